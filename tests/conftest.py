"""Fixtures that write small datasets in the real on-disk formats."""
from __future__ import annotations

import atexit
import json
import os
import pickle
import shutil
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import numpy as np
import pytest
from PIL import Image

from services import postgres_url, s3_endpoint  # noqa: F401  (fixtures: real services on loopback)

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# decoded-image caches of the tests go to a folder of their own, not the user's ~/.cache, removed at exit
# (left behind, each test run kept ~6 MB in /tmp: 94 of them on a developer's machine)
if "AUTOCLS_CACHE" not in os.environ:
    os.environ["AUTOCLS_CACHE"] = tempfile.mkdtemp(prefix="autocls-test-cache-")
    atexit.register(shutil.rmtree, os.environ["AUTOCLS_CACHE"], ignore_errors=True)
SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-train-jpg.tar.gz"


def pytest_configure(config):
    # Started in the background by a non-interactive shell (`bash .ci/run &`), the test run begins with Ctrl-C
    # ignored, and every process it starts inherits that: the children the Ctrl-C tests interrupt would ignore
    # their SIGINT.  Take it as a run from a terminal does.  (Until 0506d94, Ray Tune's handler, left installed
    # by the first search run in this process, hid it: children start with a handled signal at its default.)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def dashboard_study(storage_url: str, study_name: str) -> dict:
    """The dashboard's view of one study (its trials, curves and attached plotly figures), as optuna-dashboard's
    server answers it, asked through its public WSGI app."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage_url)

    def get(path: str):
        env = {}
        setup_testing_defaults(env)
        env.update(PATH_INFO=path, REQUEST_METHOD="GET")
        status = {}
        body = b"".join(app(env, lambda s, h, e=None: status.setdefault("s", s)))
        assert status["s"].startswith("200"), status
        return json.loads(body)

    summaries = get("/api/studies")["study_summaries"]
    study_id = next(x["study_id"] for x in summaries if x["study_name"] == study_name)
    return get(f"/api/studies/{study_id}")


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _pixels(rng, n, classes):
    """Images whose mean brightness encodes the class, so a model could learn them."""
    labels = np.arange(n) % classes
    data = rng.integers(0, 40, size=(n, 3072)) + (labels[:, None] * (200 // classes))
    return data.astype(np.uint8), labels


def write_cifar10(root: Path, per_batch: int = 20, test: int = 30) -> Path:
    """cifar-10-batches-py with 5 train batches, a test batch and batches.meta."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        data, labels = _pixels(rng, per_batch, 10)
        _pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": labels.tolist(),
                                             "data": data, "filenames": [f"img{i}_{j}.png" for j in range(per_batch)]})
    data, labels = _pixels(rng, test, 10)
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels.tolist(), "data": data})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return root


def write_cifar100(root: Path, train: int = 300, test: int = 100) -> Path:
    """cifar-100-python with train, test and meta (fine and coarse labels)."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    for split, n in (("train", train), ("test", test)):
        data, fine = _pixels(rng, n, 100)
        _pickle(folder / split, {"data": data, "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist(),
                                 "filenames": [f"{split}{j}.png" for j in range(n)]})
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                              "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return root


def write_tiny_imagenet(root: Path, classes: int = 4, per_class: int = 6, val_per_class: int = 2) -> Path:
    """tiny-imagenet-200 layout: wnids.txt, words.txt, train/<wnid>/images, val/images + val_annotations.txt."""
    rng = np.random.default_rng(2)
    base = root / "tiny-imagenet-200"
    wnids = [f"n0{i:07d}" for i in range(classes)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {i}, other name\n" for i, w in enumerate(wnids)))
    lines = []
    for c, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"{wnid}_{j}.JPEG")
        for j in range(val_per_class):
            name = f"val_{c}_{j}.JPEG"
            (base / "val" / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(base / "val" / "images" / name)
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def write_image_folder(root: Path, classes=("a", "b"), per_class: int = 5, size: int = 16) -> Path:
    rng = np.random.default_rng(3)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{j}.png")
    return root


def write_digits_folder(root: Path, per_class=None) -> Path:
    """scikit-learn's digits as a folder of 8x8 grayscale PNGs, class ``i`` keeping ``per_class[i]`` (all where None)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(digits.target == c)[:None if per_class is None else per_class[c]]):
            Image.fromarray(np.uint8(digits.images[i] * 255 / 16)).save(root / str(c) / f"{j}.png")
    return root


def write_long_tailed_digits(root: Path) -> Path:
    """scikit-learn's digits as a folder, class ``i`` keeping ``150 * 10**(-i/9)`` images: 150 zeros to 15 nines."""
    return write_digits_folder(root, [round(150 * 10 ** (-c / 9)) for c in range(10)])


def script_val_scores(monkeypatch, scores) -> None:
    """Each evaluation of a run reports the next (val top-1, val balanced accuracy) of ``scores``: which epoch a run
    keeps, without waiting for real training to produce a pattern.  Its probabilities and loss stay the real ones."""
    from autocls.training import trainer

    scripted, evaluate = iter(scores), trainer._evaluate

    def scripted_evaluate(run, data):
        probs, _, _, loss = evaluate(run, data)
        return (probs, *next(scripted), loss)

    monkeypatch.setattr(trainer, "_evaluate", scripted_evaluate)


@pytest.fixture(scope="session")
def cifar10_jpg_subset(tmp_path_factory) -> Path:
    """200 real CIFAR-10 training JPEGs per class from shared/ (skips when the archive is absent)."""
    if not SHARED_CIFAR.exists():
        pytest.skip(f"{SHARED_CIFAR} not present")
    dest = tmp_path_factory.mktemp("cifar10jpg")
    pattern = [f"train/*/0{d}??.jpg" for d in "01"]  # 0000-0199 of each class
    subprocess.run(["tar", "-xzf", str(SHARED_CIFAR), "-C", str(dest), "--wildcards", *pattern], check=True)
    return dest / "train"


@pytest.fixture(scope="session")
def cifar10_jpg_split(cifar10_jpg_subset):
    """The 2,000 photos of ``cifar10_jpg_subset`` decoded and split: 1,280 train, 320 val, 400 test."""
    from autocls.data import prepare_data

    return prepare_data(str(cifar10_jpg_subset), val_fraction=0.2, seed=0)


ENSEMBLE_SPACE = textwrap.dedent("""
    dataset: digits
    asha: {grace_period: 5, reduction_factor: 2}  # no pruning: every trial can be a member
    fixed: {epochs: 5, batch_size: 64, crop_padding: 1, flip: false, model: lenet, optimizer: adam}
    params:
      lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
      label_smoothing: {type: float, low: 0.0, high: 0.2}
      weight_decay: {type: float, low: 1.0e-6, high: 1.0e-3, log: true}
    seeds:
      - {lr: 0.004, label_smoothing: 0.1, weight_decay: 1.0e-5}
""")


@pytest.fixture(scope="session")
def searched(tmp_path_factory):
    """A real 10-trial search on digits (no pruning), shared by the ensemble and report tests."""
    from autocls.search import run_search

    root = tmp_path_factory.mktemp("ens")
    (root / "space.yaml").write_text(ENSEMBLE_SPACE)
    study = run_search("digits", space=root / "space.yaml", n_trials=10, study_name="digits",
                       studies_dir=root / "studies", show_progress=False)
    return study, root


@pytest.fixture(scope="session")
def searched_with_flips(tmp_path_factory):
    """A 4-trial digits search whose trials trained with mirror flips, so that TTA's flip modes are tried."""
    from autocls.search import run_search

    root = tmp_path_factory.mktemp("flips")
    (root / "space.yaml").write_text(ENSEMBLE_SPACE.replace("flip: false", "flip: true"))
    study = run_search("digits", space=root / "space.yaml", n_trials=4, study_name="digits",
                       studies_dir=root / "studies", show_progress=False, ensemble_top=None)
    return study, root


@pytest.fixture
def autocls_cli(capsys, monkeypatch):
    """``autocls *args`` run in this process from ``cwd``: a CompletedProcess (returncode, stdout, stderr).

    The same ``main`` the console script calls, without a new interpreter: a subprocess spends 4-10 s
    importing torch on 2 cores before the one line a bad input gets, and the bad-input tests ran 35 of
    them.  ``python -m autocls`` itself stays tested as a process (test_bad_input, test_ensemble).
    """
    from autocls.cli import main

    def run(*args, cwd) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own errors end the process with its code
            code = exc.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
