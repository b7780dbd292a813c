"""The benchmark scripts stay runnable: each loads, with every name it imports from autocls.

(``benchmarks/overhead.py`` imported a runner function renamed in a refactor and could not start;
nothing ran it until someone wanted its figures.)
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_benchmark_script_loads():
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    assert len(scripts) >= 5
    # one process for all: their imports (torch, ray) dominate; `main()` is left out, guarded by __main__
    loader = "\n".join([
        "import importlib.util, sys",
        f"sys.path.insert(0, {str(BENCHMARKS)!r})",
        "failed = []",
        f"for path in {[str(p) for p in scripts]!r}:",
        "    spec = importlib.util.spec_from_file_location('bench_' + path.rsplit('/', 1)[1][:-3], path)",
        "    try:",
        "        spec.loader.exec_module(importlib.util.module_from_spec(spec))",
        "    except Exception as exc:",
        "        failed.append(f'{path}: {type(exc).__name__}: {exc}')",
        "print('\\n'.join(failed))",
        "sys.exit(1 if failed else 0)",
    ])
    proc = subprocess.run([sys.executable, "-c", loader], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
