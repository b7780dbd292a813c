"""What a training run leaves in its folder, and the one place that writes and reads it.

A run's folder holds::

    identity.json       whose folder this is: study uid, trial number, the config's hash
    config.yaml         the TrainConfig as run
    best.safetensors    the best epoch's weights (safetensors metadata: that epoch)
    val_probs.npz       that epoch's val class probabilities (and the epoch)
    test_probs.npz      test class probabilities of the same weights (and the epoch)
    result.json         the run's summary: status, best epoch, classes, normalisation
    history.json        every evaluated epoch's metrics
    last.pt             for resuming: model, optimizer, schedule, RNG (torch.save of tensors and plain data)

Every file is written atomically.  The weights and probability files each
record their epoch, and readers (:meth:`TrialArtifacts.load_member`) refuse a
set whose epochs differ, so a run killed between two writes can never pass
off one epoch's probabilities as another's.  A checkpoint is resumed only by
the run whose identity it records: a new study that reuses a folder name, or a
trial re-proposed with another config, starts from scratch.

Example:
    >>> art = TrialArtifacts("runs/lenet", identity={"study": "a1b2c3d4", "trial": 0, "config": "9f0e"})
    >>> art.claim()       # True when the folder already holds this run's checkpoint
    False
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from autocls.files import atomic_write_bytes, atomic_write_text

IDENTITY_FILE = "identity.json"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "best.safetensors"
RESULT_FILE = "result.json"
HISTORY_FILE = "history.json"
CHECKPOINT_FILE = "last.pt"
ERROR_FILE = "error.txt"
PROBS_FILES = {"val": "val_probs.npz", "test": "test_probs.npz"}
RUN_FILES = (CONFIG_FILE, WEIGHTS_FILE, RESULT_FILE, HISTORY_FILE, CHECKPOINT_FILE, ERROR_FILE, *PROBS_FILES.values())


def config_hash(config: dict) -> str:
    """A short, stable hash of a config mapping (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """The model's state dict as safetensors, atomically."""
    from safetensors.torch import save

    # contiguous(): channels_last conv weights are strided views, which safetensors refuses
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state, metadata=metadata))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights (never unpickles anything)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


@dataclass
class Member:
    """A finished run's best epoch as the ensemble needs it: config, weights file, val/test probabilities."""

    folder: Path
    config: dict
    val_probs: np.ndarray
    test_probs: np.ndarray
    epoch: int

    @property
    def weights_file(self) -> Path:
        return self.folder / WEIGHTS_FILE


class TrialArtifacts:
    """The files of one run's folder (see the module docstring)."""

    def __init__(self, folder: str | Path, identity: dict | None = None):
        self.folder = Path(folder)
        self.identity = dict(identity or {})

    @property
    def weights_file(self) -> Path:
        return self.folder / WEIGHTS_FILE

    # --- ownership ---------------------------------------------------------------------

    def claim(self) -> bool:
        """Make the folder this run's; True when it already was (its checkpoint may be resumed).

        Another run's files (another study, another config under the same
        number) are removed first; files this module does not own are left.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / IDENTITY_FILE
        try:
            mine = json.loads(path.read_text()) == self.identity
        except (OSError, ValueError):
            mine = False
        if not mine:
            for name in RUN_FILES:
                (self.folder / name).unlink(missing_ok=True)
            atomic_write_text(path, json.dumps(self.identity))
        return mine

    # --- writing, in the order a run makes them -------------------------------------------

    def save_config(self, config: dict) -> None:
        atomic_write_text(self.folder / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))

    def save_best(self, model: torch.nn.Module, val_probs: np.ndarray, epoch: int) -> None:
        """A new best epoch: its val probabilities, then its weights; older test probabilities go."""
        (self.folder / PROBS_FILES["test"]).unlink(missing_ok=True)
        self.save_probs("val", val_probs, epoch)
        save_weights(model, self.folder / WEIGHTS_FILE, metadata={"epoch": str(epoch)})

    def save_probs(self, split: str, probs: np.ndarray, epoch: int) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, probs=np.asarray(probs, dtype=np.float32), epoch=np.int64(epoch))
        atomic_write_bytes(self.folder / PROBS_FILES[split], buffer.getvalue())

    def save_checkpoint(self, **state) -> None:
        """``torch.save`` of tensors and plain data only (``weights_only=True`` reads it), with the run's identity."""
        buffer = io.BytesIO()
        torch.save({**state, "identity": self.identity}, buffer)
        atomic_write_bytes(self.folder / CHECKPOINT_FILE, buffer.getvalue())

    def save_result(self, summary: dict, history: list[dict]) -> None:
        atomic_write_text(self.folder / HISTORY_FILE, json.dumps(history))
        atomic_write_text(self.folder / RESULT_FILE, json.dumps(summary, indent=1))

    def save_error(self, text: str) -> None:
        atomic_write_text(self.folder / ERROR_FILE, text)

    # --- reading ---------------------------------------------------------------------------

    def load_checkpoint(self, device: torch.device) -> dict | None:
        """This run's last checkpoint, or None (none written, or another run's)."""
        path = self.folder / CHECKPOINT_FILE
        if not path.exists():
            return None
        state = torch.load(path, map_location=device, weights_only=True)  # never unpickles code
        return state if state.get("identity") == self.identity else None

    def best_epoch(self) -> int | None:
        """The epoch of the saved weights (None without weights)."""
        from safetensors import safe_open

        path = self.folder / WEIGHTS_FILE
        if not path.exists():
            return None
        with safe_open(str(path), "pt") as f:
            return int((f.metadata() or {}).get("epoch", -1))

    def load_probs(self, split: str) -> tuple[np.ndarray, int] | None:
        path = self.folder / PROBS_FILES[split]
        if not path.exists():
            return None
        with np.load(path) as z:
            return z["probs"], int(z["epoch"])

    def load_config(self) -> dict:
        return yaml.safe_load((self.folder / CONFIG_FILE).read_text())

    def load_result(self) -> dict | None:
        path = self.folder / RESULT_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def load_error(self) -> str | None:
        path = self.folder / ERROR_FILE
        return path.read_text() if path.exists() else None

    def load_member(self) -> Member | None:
        """Weights and val/test probabilities of one epoch, or None when any is missing or they disagree."""
        epoch = self.best_epoch()
        val, test = self.load_probs("val"), self.load_probs("test")
        if epoch is None or val is None or test is None or not (self.folder / CONFIG_FILE).exists():
            return None
        if not val[1] == test[1] == epoch:
            return None  # interrupted between two writes: not one model's outputs
        return Member(self.folder, self.load_config(), val[0], test[0], epoch)

    def missing(self) -> list[str]:
        """Names of the member files that are absent (for messages)."""
        names = [WEIGHTS_FILE, PROBS_FILES["val"], PROBS_FILES["test"], CONFIG_FILE]
        return [n for n in names if not (self.folder / n).exists()]
