"""The README's "Using it" commands, run as written, in order, in an empty folder; then its Python API."""
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_block() -> str:
    return re.search(r"### Python API.*?```python\n(.*?)```", README.read_text(), re.S).group(1)


def test_the_python_apis_calls_are_callable_after_its_imports():
    """Regression: ``autocls.search(...)`` failed with "'module' object is not callable" once the README's own
    imports above it had imported the subpackage ``autocls.search``, which rebinds that name to the module."""
    block = python_api_block()
    imports = "\n".join(line for line in block.splitlines() if line.startswith(("import ", "from ")))
    called = sorted(set(re.findall(r"\bautocls\.(\w+)\(", block)))
    assert "run_search" in called and "train" in called
    check = f"{imports}\nimport autocls\nfor name in {called!r}:\n    assert callable(getattr(autocls, name)), name"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_example_space_is_a_valid_space():
    from autocls.search.space import SearchSpace

    text = re.search(r"## Search spaces\s+```yaml\n(.*?)```", README.read_text(), re.S).group(1)
    space = SearchSpace.from_yaml(text)
    assert set(space.params) == {"optimizer", "lr", "momentum", "cutout"} and len(space.seeds) == 1


def using_it_commands() -> list[str]:
    text = README.read_text()
    block = re.search(r"## Using it\s+```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.slow  # 7 minutes on 2 cores: the README's 12-trial search, as written
def test_the_documented_flow_runs_as_written(tmp_path):
    commands = using_it_commands()
    assert [c.split()[:2] for c in commands] == [["autocls", "search"], ["optuna-dashboard", "sqlite:///studies/digits.db"],
                                                 ["autocls", "build-ensemble"], ["autocls", "predict"],
                                                 ["autocls", "report"]]
    images = tmp_path / "some" / "images"  # what the user would point predict at
    images.mkdir(parents=True)
    from sklearn.datasets import load_digits

    for i, img in enumerate(load_digits().images[:8]):
        Image.fromarray(np.uint8(img * 255 / 16)).save(images / f"{i}.png")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        args = shlex.split(command)
        if args[0] == "optuna-dashboard":  # a server: it must answer, then it is stopped
            server = subprocess.Popen([*args, "--port", "18083"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                body = _get("http://127.0.0.1:18083/api/studies", timeout=60)
                assert b'"digits"' in body
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            continue
        proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
    predictions = (tmp_path / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "file,class,probability" and len(predictions) == 9
    correct = sum(row.split(",")[1] == str(i) for i, row in enumerate(predictions[1:]))
    assert correct >= 6  # the digits are the first eight of the set: 0..7
    assert (tmp_path / "studies" / "digits" / "report.html").stat().st_size > 100_000
    # the Python API as written, after the commands: its search finds the study finished and returns it
    (tmp_path / "images").symlink_to(images)
    proc = subprocess.run([sys.executable, "-c", python_api_block()], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs" / "lenet").is_dir()


def _get(url: str, timeout: float) -> bytes:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
