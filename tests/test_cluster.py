"""A search across a two-node Ray cluster on loopback with no shared files: PostgreSQL for the study, S3 for
the trials' files; a node is lost mid-trial and its trial resumes on the other node from the stored checkpoint."""
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autocls.artifacts import ArtifactStore
from autocls.search.runner import ray_address_file
from services import new_bucket_uri

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


def stored_checkpoints(store: ArtifactStore, study: optuna.Study) -> int:
    """How many RUNNING trials of the study have a checkpoint in the store."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return sum(store.exists(f"{t.user_attrs['trial_key']}/last.pt") for t in running if "trial_key" in t.user_attrs)


@pytest.mark.slow  # 6 minutes on 2 cores: two Ray nodes, PostgreSQL and S3 started, a node killed
@pytest.mark.skipif(not RAY.exists() or shutil.which("pgrep") is None, reason="needs the ray CLI and pgrep")
def test_search_without_shared_files_survives_losing_a_node(tmp_path, postgres_url, s3_endpoint):
    port, node_port = random.randint(20000, 29000), random.randint(30000, 39000)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # S3 credentials included
    head_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray's switch for binding to 127.0.0.1
    node_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    artifacts = new_bucket_uri(s3_endpoint)
    store = ArtifactStore(artifacts)
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
        study_args = ["--study", "cluster", "--storage", postgres_url]
        cmd = [sys.executable, "-m", "autocls", "search", "digits", "--space", str(tmp_path / "space.yaml"),
               "--trials", "6", *study_args, "--address", f"127.0.0.1:{port}", "--max-failures", "3",
               "--artifacts", artifacts, "--ensemble-top", "3"]
        driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        # wait until both nodes run a trial with a checkpoint in the store, then kill the second node
        deadline, killed = time.time() + 300, False
        while time.time() < deadline and driver.poll() is None:
            busy = [c for c in children(second_raylet[0]) if "ImplicitFunc" in Path(f"/proc/{c}/cmdline").read_text(errors="ignore")]
            try:
                study = optuna.load_study(study_name="cluster", storage=postgres_url)
            except KeyError:  # not created yet
                study = None
            if busy and study is not None and stored_checkpoints(store, study) >= 2:
                for pid in [second_raylet[0]] + children(second_raylet[0]):
                    os.kill(pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.3)
        assert killed, "no trial ran on the second node"
        out, _ = driver.communicate(timeout=600)
        assert driver.returncode == 0, out[-3000:]
        trials = optuna.load_study(study_name="cluster", storage=postgres_url).get_trials()
        assert [t.number for t in trials] == list(range(6))  # none lost, none duplicated
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
        # the lost node's trial went on elsewhere from its stored checkpoint, not from scratch
        assert any(t.user_attrs.get("resumed_from_epoch", 0) > 0 for t in trials), [t.user_attrs for t in trials]
        assert "ensemble" in out  # the search's own closing ensemble

        # nothing of a trial is on this machine's disk: ensemble, report and predict read the store
        assert not (tmp_path / "studies" / "cluster" / "trials").exists()
        shutil.rmtree(tmp_path / "studies" / "cluster" / "cores", ignore_errors=True)
        for args in (["build-ensemble", *study_args, "--top", "3", "--name", "after"], ["report", *study_args]):
            proc = subprocess.run([sys.executable, "-m", "autocls", *args], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
        images = tmp_path / "images"
        images.mkdir()
        from sklearn.datasets import load_digits
        from PIL import Image

        Image.fromarray((load_digits().images[0] * 16).astype("uint8")).save(images / "zero.png")
        proc = subprocess.run([sys.executable, "-m", "autocls", "predict",
                               str(tmp_path / "studies" / "cluster" / "ensembles" / "after"), str(images)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "zero.png" in proc.stdout, proc.stderr[-3000:]
    finally:
        for pid in pids_matching(f"127.0.0.1:{port}") + pids_matching(f"gcs_server_port={port}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        address_file = ray_address_file()  # `ray stop` would delete it, but it stops every Ray on the machine
        if address_file.is_file() and address_file.read_text().strip().endswith(f":{port}"):
            address_file.unlink()
