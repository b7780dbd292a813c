"""What a training run leaves in its folder, and the one place that writes and reads it.

A run's folder holds::

    identity.json       whose folder this is: study uid, trial number, the config's hash
    config.yaml         the TrainConfig as run
    best.safetensors    the best epoch's weights (safetensors metadata: that epoch)
    val_probs.npz       that epoch's val class probabilities (and the epoch)
    test_probs.npz      test class probabilities of the same weights (and the epoch)
    tta_<mode>.npz      val and test probabilities of the same weights with test-time augmentation (``flip``,
                        ``flip-translate``), as the first ensemble that needed them computed them (and the epoch)
    result.json         the run's summary: status, best epoch, classes, normalisation
    history.json        every evaluated epoch's metrics
    last.pt             for resuming: model, optimizer, schedule, RNG (torch.save of tensors and plain data)

The folder lives in an :class:`ArtifactStore`: a local folder (the study's,
by default) or an object store named by a URI (``s3://bucket/prefix``, any
S3-compatible server, or ``gs://``), so that the nodes of a cluster without a
shared filesystem write there, and ``build-ensemble``, ``predict``, ``report``
and a trial resumed on another node read from there.

Every file is written atomically (a local rename, or one object PUT).  The weights and probability files each
record their epoch, and readers (:meth:`TrialArtifacts.load_member`) refuse a
set whose epochs differ, so a run killed between two writes can never pass
off one epoch's probabilities as another's.  A checkpoint is resumed only by
the run whose identity it records: a new study that reuses a folder name, or a
trial re-proposed with another config, starts from scratch.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> art = TrialArtifacts(folder, identity={"study": "a1b2c3d4", "trial": 0, "config": "9f0e"})
    >>> art.claim()       # a new folder: the run starts from scratch
    False
    >>> art.claim()       # the folder is this run's: its checkpoint may be resumed
    True
    >>> store = ArtifactStore("s3://bucket/studies/cifar10?endpoint_override=127.0.0.1:9000&scheme=http")
    >>> art = store.trial("trials/00003-a1b2c3d4", identity={"study": "a1b2c3d4", "trial": 3})
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import yaml

from autocls.errors import UserError
from autocls.files import atomic_write_bytes

IDENTITY_FILE = "identity.json"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "best.safetensors"
REVISION_KEY = "weights_revision"  # in a weights file's metadata and a checkpoint: see weights_revision()
RESULT_FILE = "result.json"
HISTORY_FILE = "history.json"
CHECKPOINT_FILE = "last.pt"
ERROR_FILE = "error.txt"
PROBS_FILES = {"val": "val_probs.npz", "test": "test_probs.npz"}
# the views autocls.inference.TTA_MODES adds to the plain pass, one file each
TTA_FILES = {"flip": "tta_flip.npz", "flip-translate": "tta_flip-translate.npz"}
SPLIT_FILE = "split.npz"  # the study's train/val/test split, at the store's root
RUN_FILES = (CONFIG_FILE, WEIGHTS_FILE, RESULT_FILE, HISTORY_FILE, CHECKPOINT_FILE, ERROR_FILE, *PROBS_FILES.values(),
             *TTA_FILES.values())


def config_hash(config: dict) -> str:
    """A short, stable hash of a config mapping (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactStore:
    """Where runs leave their files: a local folder, or an object store by URI.

    A path (or ``file://``) is a folder on this machine.  ``s3://bucket/prefix``
    and ``gs://bucket/prefix`` go through pyarrow's file systems, the ones Ray
    Tune uses for its own ``storage_path`` (credentials from the usual
    environment: ``AWS_ACCESS_KEY_ID``..., instance roles).  An S3-compatible
    server (MinIO, Ceph, moto) is named in the URI's query:
    ``s3://bucket/prefix?endpoint_override=host:9000&scheme=http``.

    Example:
        >>> import tempfile
        >>> store = ArtifactStore(tempfile.mkdtemp())  # a folder, or an object store's URI
        >>> store.write("notes/a.txt", b"hello")
        >>> store.read("notes/a.txt")
        b'hello'
    """

    def __init__(self, uri: str | Path):
        self.uri = str(uri)
        self.fs = None
        if "://" in self.uri and not self.uri.startswith("file://"):
            import pyarrow.fs

            try:
                self.fs, self.root = pyarrow.fs.FileSystem.from_uri(self.uri)
            except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for bad or unsupported URIs
                raise UserError(f"cannot open artifact store '{self.uri}': {str(exc).splitlines()[0][:200]}") from None
        else:
            self.root = str(Path(self.uri.removeprefix("file://")).resolve())
            self.uri = self.root  # one spelling per folder, whatever the working directory

    @property
    def is_local(self) -> bool:
        return self.fs is None

    def __repr__(self) -> str:
        return f"ArtifactStore({self.uri!r})"

    def local_path(self, key: str) -> Path:
        """The file of ``key`` on this machine (local stores only)."""
        assert self.is_local, "an object store has no local paths"
        return Path(self.root, key)

    def write(self, key: str, data: bytes) -> None:
        if self.is_local:
            self.local_path(key).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.local_path(key), data)
        else:
            with self.fs.open_output_stream(f"{self.root}/{key}") as f:  # one PUT: all or nothing
                f.write(data)

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        try:
            if self.is_local:
                return self.local_path(key).read_bytes()
            with self.fs.open_input_file(f"{self.root}/{key}") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def exists(self, key: str) -> bool:
        if self.is_local:
            return self.local_path(key).is_file()
        import pyarrow.fs

        return self.fs.get_file_info(f"{self.root}/{key}").type == pyarrow.fs.FileType.File

    def fetch(self, key: str) -> Path | None:
        """The file of ``key`` on this machine: the store's own, or a downloaded copy; None when absent."""
        if self.is_local:
            path = self.local_path(key)
            return path if path.is_file() else None
        data = self.read(key)
        if data is None:
            return None
        path = _download_folder() / uuid.uuid4().hex / Path(key).name
        path.parent.mkdir()
        path.write_bytes(data)
        return path

    @contextlib.contextmanager
    def fetched(self, key: str) -> Iterator[Path | None]:
        """The file of ``key`` on this machine while the block runs (None when absent): the store's own, or a
        downloaded copy removed when the block ends.

        For a file read once, above all in Ray's worker processes: they end without running ``atexit``, so a
        copy from :meth:`fetch` would stay behind in the temporary folder after every search.
        """
        if self.is_local:
            yield self.fetch(key)
            return
        data = self.read(key)
        if data is None:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="autocls-artifacts-") as folder:
            path = Path(folder, Path(key).name)
            path.write_bytes(data)
            yield path

    def delete(self, key: str) -> None:
        if self.is_local:
            self.local_path(key).unlink(missing_ok=True)
        elif self.exists(key):
            self.fs.delete_file(f"{self.root}/{key}")

    def trial(self, key: str, identity: dict | None = None) -> "TrialArtifacts":
        """The run folder ``key`` of this store."""
        return TrialArtifacts(key, identity, store=self)


def study_store(study) -> ArtifactStore:
    """The artifact store of an autocls study (its ``artifacts`` URI; older studies: the study folder)."""
    return ArtifactStore(study.user_attrs.get("artifacts") or study.user_attrs.get("folder") or ".")


def trial_artifacts(study, trial) -> "TrialArtifacts | None":
    """The files of an Optuna trial of an autocls study (``trial``: a FrozenTrial or Trial); None if it never ran."""
    key = trial.user_attrs.get("trial_key")
    if key is not None:
        return study_store(study).trial(key)
    folder = trial.user_attrs.get("trial_dir")  # an older study recorded the trial's local folder
    return TrialArtifacts(folder) if folder else None


@functools.cache
def _download_folder() -> Path:
    """A temporary folder of this process for files fetched from object stores (removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="autocls-artifacts-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def weights_revision(model: torch.nn.Module) -> int:
    """What the model's weights mean: 1, or the ``weights_revision`` its class declares since a change of its code
    made weights saved before still load but compute something else (VGG's logits gained a factor of 0.125).

    Example:
        >>> from autocls.models import create_model
        >>> weights_revision(create_model("resnet9", 10)), weights_revision(create_model("vgg11_bn", 10))
        (1, 2)
    """
    return int(getattr(model, "weights_revision", 1))


def weights_bytes(model: torch.nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """The model's state dict as safetensors, its :func:`weights_revision` in the metadata."""
    from safetensors.torch import save

    # contiguous(): channels_last conv weights are strided views, which safetensors refuses
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return save(state, metadata={**(metadata or {}), REVISION_KEY: str(weights_revision(model))})


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights (never unpickles anything)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        state = {key: f.get_tensor(key) for key in f.keys()}
        saved_revision = int((f.metadata() or {}).get(REVISION_KEY, 1))
    load_model_state(model, state, path, saved_revision=saved_revision)


def load_model_state(model: torch.nn.Module, state: dict, source, remedy: str = "train it again",
                     saved_revision: int = 1) -> None:
    """``model.load_state_dict(state)``; weights of another layout, or of another :func:`weights_revision`
    (``saved_revision``: theirs, 1 in files that do not say), are one :class:`UserError` naming ``source`` and
    the ``remedy``.

    A model's code can change between versions of autocls (a one-channel LeNet gained a layer), and a run or
    ensemble saved before then names its model but no longer fits it, or fits it and means something else.
    """
    if saved_revision != weights_revision(model):
        raise UserError(f"{source}: saved by another version of autocls, whose {type(model).__name__} computed "
                        f"other outputs from the same weights (weights revision {saved_revision}, this version's "
                        f"{weights_revision(model)}); {remedy}")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(str(error).split())  # torch's message spans lines: missing and unexpected keys, shapes
        detail = detail if len(detail) <= 200 else detail[:197] + "..."
        raise UserError(f"{source}: its weights do not fit the model as this version of autocls builds it (saved by "
                        f"another version?); {remedy}. {detail}") from None


@dataclass
class Member:
    """A finished run's best epoch as the ensemble needs it: config, weights file, val/test probabilities.

    ``weights_file`` is on this machine: in the store's folder, or fetched from an object store.
    """

    weights_file: Path
    config: dict
    val_probs: np.ndarray
    test_probs: np.ndarray
    epoch: int


class TrialArtifacts:
    """The files of one run's folder (see the module docstring).

    ``folder``: the folder's key in ``store`` (default: a local folder of that name).
    """

    def __init__(self, folder: str | Path, identity: dict | None = None, store: ArtifactStore | None = None):
        if store is None:
            store, folder = ArtifactStore(folder), ""
        self.store, self.key = store, str(folder).strip("/")
        self.identity = dict(identity or {})
        self._fetched: dict[str, Path | None] = {}  # files on this machine (downloaded from an object store)

    def __repr__(self) -> str:
        return f"TrialArtifacts({self.key!r}, store={self.store!r})"

    @property
    def location(self) -> str:
        """The folder as a user names it: a local path or an object store URI."""
        return str(self.store.local_path(self.key)) if self.store.is_local else f"{self.store.uri.split('?')[0]}/{self.key}"

    def _name(self, name: str) -> str:
        return f"{self.key}/{name}" if self.key else name

    def _write(self, name: str, data: bytes) -> None:
        self.store.write(self._name(name), data)

    def _read(self, name: str) -> bytes | None:
        return self.store.read(self._name(name))

    def _path(self, name: str) -> Path | None:
        """The file on this machine (fetched once from an object store), or None when it does not exist."""
        if name not in self._fetched or not self._fetched[name].exists():
            self._fetched[name] = self.store.fetch(self._name(name))
        return self._fetched[name]

    @property
    def weights_file(self) -> Path | None:
        return self._path(WEIGHTS_FILE)

    # --- ownership ---------------------------------------------------------------------

    def owner(self) -> dict | None:
        """The identity of the run whose folder this is (None: no run's, or unreadable)."""
        try:
            return json.loads(self._read(IDENTITY_FILE) or b"null")
        except ValueError:
            return None

    def claim(self) -> bool:
        """Make the folder this run's; True when it already was (its checkpoint may be resumed).

        Another run's files (another study, another config under the same
        number) are removed first; files this module does not own are left.
        """
        mine = self.owner() == self.identity
        if not mine:
            for name in RUN_FILES:
                self.store.delete(self._name(name))
            self._write(IDENTITY_FILE, json.dumps(self.identity).encode())
        return mine

    # --- writing, in the order a run makes them -------------------------------------------

    def save_config(self, config: dict) -> None:
        self._write(CONFIG_FILE, yaml.safe_dump(config, sort_keys=False).encode())

    def save_best(self, model: torch.nn.Module, val_probs: np.ndarray, epoch: int) -> None:
        """A new best epoch: its val probabilities, then its weights; older test and TTA probabilities go."""
        self.store.delete(self._name(PROBS_FILES["test"]))
        self.delete_tta_probs()
        self.save_probs("val", val_probs, epoch)
        self._write(WEIGHTS_FILE, weights_bytes(model, metadata={"epoch": str(epoch)}))
        self._fetched.pop(WEIGHTS_FILE, None)

    def save_probs(self, split: str, probs: np.ndarray, epoch: int) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, probs=np.asarray(probs, dtype=np.float32), epoch=np.int64(epoch))
        self._write(PROBS_FILES[split], buffer.getvalue())

    def save_tta_probs(self, mode: str, val_probs: np.ndarray, test_probs: np.ndarray, epoch: int) -> None:
        """The val and test probabilities of the ``epoch``'s weights with test-time augmentation ``mode``."""
        buffer = io.BytesIO()
        np.savez(buffer, val=np.asarray(val_probs, dtype=np.float32), test=np.asarray(test_probs, dtype=np.float32),
                 epoch=np.int64(epoch))
        self._write(TTA_FILES[mode], buffer.getvalue())

    def delete_tta_probs(self) -> None:
        for name in TTA_FILES.values():
            self.store.delete(self._name(name))

    def save_checkpoint(self, **state) -> None:
        """``torch.save`` of tensors and plain data only (``weights_only=True`` reads it), with the run's identity."""
        buffer = io.BytesIO()
        torch.save({**state, "identity": self.identity}, buffer)
        self._write(CHECKPOINT_FILE, buffer.getvalue())

    def save_result(self, summary: dict, history: list[dict]) -> None:
        self._write(HISTORY_FILE, json.dumps(history).encode())
        self._write(RESULT_FILE, json.dumps(summary, indent=1).encode())

    def save_error(self, text: str) -> None:
        self._write(ERROR_FILE, text.encode())

    # --- reading ---------------------------------------------------------------------------

    def load_checkpoint(self, device: torch.device) -> dict | None:
        """This run's last checkpoint, or None (none written, or another run's)."""
        data = self._read(CHECKPOINT_FILE)
        if data is None:
            return None
        state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)  # never unpickles code
        return state if state.get("identity") == self.identity else None

    def best_epoch(self) -> int | None:
        """The epoch of the saved weights (None without weights)."""
        from safetensors import safe_open

        path = self.weights_file
        if path is None:
            return None
        with safe_open(str(path), "pt") as f:
            return int((f.metadata() or {}).get("epoch", -1))

    def load_probs(self, split: str) -> tuple[np.ndarray, int] | None:
        data = self._read(PROBS_FILES[split])
        if data is None:
            return None
        with np.load(io.BytesIO(data)) as z:
            return z["probs"], int(z["epoch"])

    def load_tta_probs(self, mode: str, epoch: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The val and test probabilities with test-time augmentation ``mode`` of the ``epoch``'s weights, or None
        (never computed, or of another epoch's).

        Example:
            >>> import tempfile
            >>> art = TrialArtifacts(tempfile.mkdtemp())
            >>> art.save_tta_probs("flip", np.full((2, 3), 1 / 3), np.full((4, 3), 1 / 3), epoch=7)
            >>> [p.shape for p in art.load_tta_probs("flip", epoch=7)], art.load_tta_probs("flip", epoch=8)
            ([(2, 3), (4, 3)], None)
        """
        data = self._read(TTA_FILES[mode])
        if data is None:
            return None
        with np.load(io.BytesIO(data)) as z:
            return (z["val"], z["test"]) if int(z["epoch"]) == epoch else None

    def load_config(self) -> dict | None:
        data = self._read(CONFIG_FILE)
        return yaml.safe_load(data) if data is not None else None

    def load_result(self) -> dict | None:
        data = self._read(RESULT_FILE)
        return json.loads(data) if data is not None else None

    def load_history(self) -> list[dict] | None:
        data = self._read(HISTORY_FILE)
        return json.loads(data) if data is not None else None

    def load_error(self) -> str | None:
        data = self._read(ERROR_FILE)
        return data.decode(errors="replace") if data is not None else None

    def load_member(self) -> Member | None:
        """Weights and val/test probabilities of one epoch, or None when any is missing or they disagree."""
        epoch = self.best_epoch()
        val, test = self.load_probs("val"), self.load_probs("test")
        config = self.load_config()
        if epoch is None or val is None or test is None or config is None:
            return None
        if not val[1] == test[1] == epoch:
            return None  # interrupted between two writes: not one model's outputs
        return Member(self.weights_file, config, val[0], test[0], epoch)

    def missing(self) -> list[str]:
        """Names of the member files that are absent (for messages)."""
        names = [WEIGHTS_FILE, PROBS_FILES["val"], PROBS_FILES["test"], CONFIG_FILE]
        return [n for n in names if not self.store.exists(self._name(n))]
