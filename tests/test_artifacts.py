"""The artifact store: a trial's files in a local folder or in an object store (a real S3 API, moto's server)."""
import numpy as np
import pytest
import torch

from autocls.artifacts import ArtifactStore, TrialArtifacts
from autocls.errors import UserError
from services import new_bucket_uri


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return ArtifactStore(tmp_path / "study")
    return ArtifactStore(new_bucket_uri(request.getfixturevalue("s3_endpoint")))


def test_a_run_round_trips_through_the_store(store):
    model = torch.nn.Linear(4, 3)
    run = store.trial("trials/00001-abcd", identity={"study": "abcd", "trial": 1})
    assert run.claim() is False  # a new folder
    run.save_config({"model": "linear", "epochs": 2})
    assert run.load_member() is None and set(run.missing()) == {"best.safetensors", "val_probs.npz", "test_probs.npz"}
    val, test = np.full((5, 3), 1 / 3, np.float32), np.eye(3, dtype=np.float32)
    run.save_best(model, val, epoch=2)
    run.save_probs("test", test, epoch=2)
    run.save_checkpoint(epoch=2, model=model.state_dict())
    run.save_result({"status": "complete"}, [{"epoch": 1}, {"epoch": 2}])

    # another process (another node) opens the same folder from the store alone
    again = ArtifactStore(store.uri).trial("trials/00001-abcd", identity={"study": "abcd", "trial": 1})
    assert again.claim() is True  # the same run: its checkpoint may be resumed
    member = again.load_member()
    assert member.epoch == 2 and np.array_equal(member.test_probs, test) and member.config["model"] == "linear"
    restored = torch.nn.Linear(4, 3)
    from autocls.artifacts import load_weights

    load_weights(restored, member.weights_file)
    assert torch.equal(restored.weight, model.weight)
    assert again.load_checkpoint(torch.device("cpu"))["epoch"] == 2
    assert again.load_result() == {"status": "complete"} and len(again.load_history()) == 2


def test_another_run_in_the_same_folder_starts_from_scratch(store):
    first = store.trial("trials/00000-aaaa", identity={"study": "aaaa", "trial": 0})
    first.claim()
    first.save_checkpoint(epoch=3)
    first.save_error("boom")
    other = store.trial("trials/00000-aaaa", identity={"study": "bbbb", "trial": 0})
    assert other.claim() is False
    assert other.load_checkpoint(torch.device("cpu")) is None and other.load_error() is None


def test_weights_and_probabilities_of_different_epochs_are_refused(store):
    run = store.trial("t", identity={})
    run.claim()
    run.save_config({})
    run.save_best(torch.nn.Linear(2, 2), np.ones((2, 2), np.float32), epoch=3)
    run.save_probs("test", np.ones((2, 2), np.float32), epoch=2)  # a run killed between two writes
    assert run.load_member() is None


def test_a_local_store_is_the_folder_itself(tmp_path):
    run = ArtifactStore(tmp_path).trial("trials/x")
    run.save_error("boom")
    assert (tmp_path / "trials" / "x" / "error.txt").read_text() == "boom"
    assert TrialArtifacts(tmp_path / "trials" / "x").load_error() == "boom"  # a folder is a store of its own


def test_a_folder_store_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ArtifactStore("study").uri == str(tmp_path / "study") == ArtifactStore(tmp_path / "study").uri


def test_a_folder_store_apart_from_the_study_and_a_continued_study_keeps_it(tmp_path):
    """Regression: a folder store other than the study folder had no split file, so every trial failed."""
    from autocls.artifacts import trial_artifacts
    from autocls.search import run_search

    space = tmp_path / "space.yaml"
    space.write_text("dataset: digits\nfixed: {epochs: 1, batch_size: 128, crop_padding: 1, model: lenet}\n"
                     "params: {lr: {type: float, low: 0.001, high: 0.01}}\n")
    kwargs = dict(space=space, n_trials=1, studies_dir=tmp_path / "studies", study_name="s", show_progress=False,
                  ensemble_top=None)
    study = run_search("digits", artifacts=str(tmp_path / "store"), **kwargs)
    assert study.trials[0].state.name == "COMPLETE"
    assert (tmp_path / "store" / "split.npz").exists()
    assert trial_artifacts(study, study.trials[0]).location.startswith(str(tmp_path / "store" / "trials"))
    with pytest.raises(UserError, match="keeps its trials' files in"):
        run_search("digits", artifacts=str(tmp_path / "elsewhere"), **{**kwargs, "n_trials": 2})


def test_a_bad_store_uri_is_one_line():
    with pytest.raises(UserError, match="cannot open artifact store 'nosuch://bucket'"):
        ArtifactStore("nosuch://bucket")


def test_a_trial_worker_leaves_no_downloaded_split_behind(tmp_path, s3_endpoint):
    """Ray ends its worker processes without running ``atexit``: the split file a trial fetches from an object
    store must be gone once the trial's data is loaded (every cluster search left a copy in /tmp)."""
    import os
    import subprocess
    import sys

    from autocls.data import prepare_data

    prepare_data("digits", split_file=tmp_path / "split.npz")
    store = ArtifactStore(new_bucket_uri(s3_endpoint))
    store.write("split.npz", (tmp_path / "split.npz").read_bytes())
    temp = tmp_path / "tmp"
    temp.mkdir()
    worker = (f"import os\n"
              f"from autocls.artifacts import ArtifactStore\n"
              f"from autocls.search.trainable import _cached_data\n"
              f"from autocls.training import Runtime, TrainConfig\n"
              f"data = _cached_data(TrainConfig(), Runtime(), ArtifactStore({store.uri!r}), 'split.npz')\n"
              f"assert len(data.train_y) > 0\n"
              f"os._exit(0)  # as a Ray worker ends\n")
    subprocess.run([sys.executable, "-c", worker], env={**os.environ, "TMPDIR": str(temp)}, check=True, timeout=120)
    assert list(temp.iterdir()) == []
