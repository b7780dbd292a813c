import sys

from autocls.cli import main

sys.exit(main())
