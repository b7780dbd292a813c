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


def test_the_budget_benchmark_names_each_trial_that_trained(monkeypatch):
    """Regression: the README said a search's "four trials ensembled" where the ensemble kept two of them; the
    benchmark printed the count of trials only."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    monkeypatch.syspath_prepend(str(BENCHMARKS))  # for this test only
    from budget import trials_run

    study = optuna.create_study(direction="maximize")
    assert trials_run(study) == []
    widths = CategoricalDistribution([0.375, 0.5])
    trained = [(0.5, 24, "COMPLETE"), (0.375, 3, "PRUNED"), (0.5, 2, "FAIL")]
    for number, (width, epochs, state) in enumerate(trained):
        study.enqueue_trial({"width": width})
        trial = study.ask({"width": widths})
        trial.report(0.5, epochs)
        trial.set_user_attr("epochs_run", epochs)
        trial.set_user_attr("best_val_acc", 0.8874 - number / 10)
        study.tell(trial, 0.88 if state == "COMPLETE" else None, state=optuna.trial.TrialState[state])
    study.enqueue_trial({"width": 0.5})  # proposed, never ran: not a line
    study.tell(study.ask({"width": widths}), state=optuna.trial.TrialState.PRUNED)  # pruned before it started
    lines = trials_run(study)
    # the arm's count of trials is these lines', so a trial that trained and then failed is counted and named
    assert len(lines) == 3 and lines[0].startswith("#0 COMPLETE") and "@0.5 24 epochs" in lines[0]
    assert "val 88.74%" in lines[0] and lines[1].startswith("#1 PRUNED") and "@0.375 3 epochs" in lines[1]
    assert lines[2].startswith("#2 FAIL") and "2 epochs" in lines[2]
