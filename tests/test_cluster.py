"""A search across a two-node Ray cluster on loopback, losing a node mid-trial."""
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

RAY = Path(sys.executable).with_name("ray")
SPACE = textwrap.dedent("""
    dataset: digits
    asha: {grace_period: 2, reduction_factor: 2}
    fixed: {epochs: 6, batch_size: 64, crop_padding: 1, flip: false, model: resnet9, optimizer: sgd, warmup_epochs: 1}
    params:
      lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
      label_smoothing: {type: float, low: 0.0, high: 0.2}
""")


def pids_matching(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.skipif(not RAY.exists() or shutil.which("pgrep") is None, reason="needs the ray CLI and pgrep")
def test_search_survives_losing_a_node(tmp_path):
    port, node_port = random.randint(20000, 29000), random.randint(30000, 39000)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray's switch for binding to 127.0.0.1
    node_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    (tmp_path / "space.yaml").write_text(SPACE)
    try:
        subprocess.run([str(RAY), "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard",
                        "false"], env=head_env, check=True, capture_output=True, timeout=120)
        subprocess.run([sys.executable, str(Path(__file__).with_name("ray_loopback_node.py")), "start", "--address",
                        f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                        "--node-manager-port", str(node_port)], env=node_env, check=True, capture_output=True,
                       timeout=120)
        second_raylet = pids_matching(f"node_manager_port={node_port}")
        assert len(second_raylet) == 1
        cmd = [sys.executable, "-m", "autocls", "search", "digits", "--space", str(tmp_path / "space.yaml"),
               "--trials", "6", "--study", "cluster", "--address", f"127.0.0.1:{port}", "--max-failures", "3"]
        driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        # wait until the second node runs a trial that has trained at least one epoch, then kill that node
        deadline, killed = time.time() + 300, False
        while time.time() < deadline and driver.poll() is None:
            busy = [c for c in children(second_raylet[0]) if "ImplicitFunc" in Path(f"/proc/{c}/cmdline").read_text(errors="ignore")]
            if busy and list((tmp_path / "studies" / "cluster" / "trials").glob("*/last.pt")):
                for pid in [second_raylet[0]] + children(second_raylet[0]):
                    os.kill(pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.3)
        assert killed, "no trial ran on the second node"
        out, _ = driver.communicate(timeout=600)
        assert driver.returncode == 0, out[-3000:]
        db = tmp_path / "studies" / "cluster.db"
        trials = optuna.load_study(study_name="cluster", storage=f"sqlite:///{db}").get_trials()
        assert [t.number for t in trials] == list(range(6))  # none lost, none duplicated
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
        with sqlite3.connect(db) as con:
            assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    finally:
        for pid in pids_matching(f"127.0.0.1:{port}") + pids_matching(f"gcs_server_port={port}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
