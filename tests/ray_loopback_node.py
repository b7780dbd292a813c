"""`ray start` for a second Ray node on 127.0.0.1 (used by the cluster test).

Ray rewrites 127.0.0.1 to the host's network address when a node joins a
cluster; the cluster test must stay on loopback, so this launcher keeps the
address it is given and then runs Ray's own CLI.
"""
import sys

import ray._private.services as services

services.resolve_ip_for_localhost = lambda host: host

from ray.scripts.scripts import main  # noqa: E402

sys.argv[0] = "ray"
main()
