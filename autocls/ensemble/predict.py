"""Load a saved ensemble and predict image files with it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from autocls.data.augment import BatchAugment
from autocls.data.sources import decode_images, image_files
from autocls.artifacts import sha256_file
from autocls.ensemble.build import FORMAT_VERSION, MANIFEST_FILE, manifest_digest, saved_ensembles
from autocls.ensemble.voting import apply_temperature, hard_vote, soft_vote
from autocls.errors import UserError


@dataclass
class LoadedEnsemble:
    """Member models on one device plus the voting rule; :meth:`predict_proba` takes uint8 images."""

    folder: Path
    manifest: dict
    models: list[torch.nn.Module]
    device: torch.device

    @property
    def classes(self) -> list[str]:
        return self.manifest["classes"]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest["image_shape"])

    def predict_proba(self, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        from autocls.inference import predict_proba, trained_precision

        tta = self.manifest.get("tta", "none")
        member_probs = []
        for model, member in zip(self.models, self.manifest["members"]):
            normalize = BatchAugment(self.manifest["mean"], self.manifest["std"],
                                     image_size=member["config"].get("image_size")).normalize
            probs = predict_proba(model, images, normalize, batch_size, tta=tta,
                                  **trained_precision(member["config"], self.device)).numpy()  # moved per batch
            member_probs.append(apply_temperature(probs, member["temperature"]))
        weights = [m["weight"] for m in self.manifest["members"]]
        vote = hard_vote if self.manifest["method"] == "hard" else soft_vote
        return vote(member_probs, weights)


def read_manifest(folder: Path) -> dict:
    """``ensemble.json``, checked: its format, its shape, and its content against the digest it records."""
    from autocls import __version__

    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise UserError(f"no ensemble or training run at '{folder}': it does not exist")
    if not path.is_file():
        saved = saved_ensembles(folder)  # a study's folder given for one of its ensembles
        raise UserError(f"'{folder}' is not an autocls ensemble (no ensemble.json) nor a training run (no result.json)"
                        + (f"; its ensembles: {', '.join(map(str, reversed(saved)))}" if saved else ""))
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid UTF-8 JSON ({str(exc)[:120]})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT_VERSION:
        raise UserError(f"'{folder}' was saved by autocls {manifest.get('autocls_version', '?')} in format "
                        f"{manifest.get('format')}; this autocls {__version__} reads format {FORMAT_VERSION}")
    if manifest.get("content_sha256") != manifest_digest(manifest):
        raise UserError(f"{path}: its content does not match its recorded hash (modified or corrupt)")
    return manifest


def run_manifest(folder: Path) -> dict:
    """A training run's folder (``autocls train``'s, or a study's trial) as a one-member ensemble manifest:
    the run's best epoch at the test-time augmentation ``autocls train`` chose on val and the temperature it
    fitted at it (none and 1 for a run older than that)."""
    from autocls.artifacts import WEIGHTS_FILE, TrialArtifacts

    run = TrialArtifacts(folder)
    result, config = run.load_result(), run.load_config()
    if result is None or config is None or run.weights_file is None:
        raise UserError(f"'{folder}' holds no finished run: it lacks result.json, config.yaml or {WEIGHTS_FILE}")
    described = ("classes", "mean", "std", "image_shape")  # what an ensemble's manifest says of its data
    if not set(described) <= set(result):
        raise UserError(f"'{folder}/result.json' lacks the classes and normalisation that predicting needs "
                        f"(written by an older autocls): train it again")
    member = {"weights_file": WEIGHTS_FILE, "sha256": None, "weight": 1.0, "temperature": result.get("temperature", 1.0),
              "config": config}
    return {"method": "soft", "tta": result.get("tta", "none"), "members": [member],
            **{key: result[key] for key in described}}


def load_ensemble(folder: str | Path, device: str = "auto") -> LoadedEnsemble:
    """Read ``ensemble.json``, check its hash, versions and weight hashes, and build the member models.

    A training run's folder (``runs/digits-resnet9``, or a trial's) loads as
    a one-member ensemble of its best epoch (:func:`run_manifest`), so that
    ``autocls predict`` takes what ``autocls train`` saved.  Weights are read
    with safetensors only, and only from inside the folder: nothing in it is
    unpickled, and no path in the manifest leads out of it.
    """
    from autocls.artifacts import RESULT_FILE
    from autocls.inference import TTA_MODES, load_trained_model, resolve_device

    folder = Path(folder)
    is_run = not (folder / MANIFEST_FILE).exists() and (folder / RESULT_FILE).is_file()
    manifest = run_manifest(folder) if is_run else read_manifest(folder)
    if manifest.get("tta", "none") not in TTA_MODES:
        raise UserError(f"'{folder}' uses test-time augmentation '{manifest['tta']}', unknown to this autocls "
                        f"(it knows {', '.join(TTA_MODES)}): a newer autocls saved it")
    device_obj = resolve_device(device)
    models = []
    root = folder.resolve()
    for member in manifest["members"]:
        path = (folder / member["weights_file"]).resolve()
        if not path.is_relative_to(root):
            raise UserError(f"ensemble member file '{member['weights_file']}' lies outside '{folder}'")
        if not path.is_file():
            raise UserError(f"ensemble member file '{path}' is missing")
        if member["sha256"] is not None and sha256_file(path) != member["sha256"]:  # None: a run's own file
            raise UserError(f"ensemble member file '{path}' does not match its recorded hash (modified or corrupt)")
        models.append(load_trained_model(member["config"], path, len(manifest["classes"]), manifest["image_shape"][0],
                                         device_obj))
    return LoadedEnsemble(folder, manifest, models, device_obj)


def collect_images(inputs: list[str | Path]) -> list[Path]:
    """Image files from a mix of file and folder arguments (folders are searched recursively, as
    :func:`~autocls.data.sources.image_files` does: hidden files left out)."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += image_files(path)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"'{item}' does not exist")
    if not files:
        raise UserError(f"no image files in {', '.join(map(str, inputs))}")
    return files


def read_images(files: list[Path], image_shape: tuple[int, int, int]) -> tuple[torch.Tensor, list[Path], list[Path]]:
    """Decode to the ensemble's channels and size; returns (images, read files, unreadable files)."""
    channels, height, width = image_shape
    x, read = decode_images(files, (width, height), channels)
    read_set = set(read)
    return x, [files[i] for i in read], [f for i, f in enumerate(files) if i not in read_set]


# Files decoded and predicted at a time: bounded memory for large folders, and a progress step (5,000 CIFAR-10
# photos took 25 s on 2 CPU cores through a ResNet-18)
FILES_AT_A_TIME = 1024


def predict_files(ensemble: LoadedEnsemble, inputs: list[str | Path], batch_size: int = 256,
                  on_progress: Callable[[int, int], None] | None = None, top_k: int = 1):
    """A pandas table: file, class, probability (and the files that could not be read).

    With ``top_k`` > 1 each row also names the runners-up, most probable first: ``class_2``, ``probability_2``, ...
    up to ``class_<top_k>`` (``class`` and ``probability`` stay the top one, so a script reading them reads the
    same at any ``top_k``). ``on_progress(done, total)`` is called after each :data:`FILES_AT_A_TIME` files.

    Example:
        >>> table, unreadable = predict_files(load_ensemble("runs/digits-resnet9"), ["images/"], top_k=2)  # doctest: +SKIP
        >>> list(table.columns)  # doctest: +SKIP
        ['file', 'class', 'probability', 'class_2', 'probability_2']
    """
    import pandas as pd

    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if not 1 <= top_k <= len(ensemble.classes):
        raise UserError(f"--top-k must be between 1 and the {len(ensemble.classes)} classes it predicts, got {top_k}")
    columns = ["file", "class", "probability"]
    for rank in range(2, top_k + 1):
        columns += [f"class_{rank}", f"probability_{rank}"]
    files = collect_images(inputs)
    rows, bad = [], []
    for start in range(0, len(files), FILES_AT_A_TIME):
        x, ok, unreadable = read_images(files[start:start + FILES_AT_A_TIME], ensemble.image_shape)
        bad += unreadable
        if len(ok):
            probs = ensemble.predict_proba(x, batch_size)
            # a stable sort: of classes the vote ties, the lower index comes first, as argmax picks it
            ranked = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
            for f, p, order in zip(ok, probs, ranked):
                row = [str(f)]
                for c in order:
                    row += [ensemble.classes[c], float(p[c])]
                rows.append(row)
        if on_progress is not None:
            on_progress(min(start + FILES_AT_A_TIME, len(files)), len(files))
    return pd.DataFrame(rows, columns=columns), bad


def folder_scores(table, classes: list[str]) -> dict | None:
    """How the predictions of :func:`predict_files` score where a file's folder is named after one of ``classes``
    (a labeled folder, as training reads one: ``<folder>/<class>/<image>``); None where no file's is.

    A user's own held-out photos are scored so, as a test split is; other files are predictions only. A table of
    the top ``k`` classes (``class_2`` ... ``class_<k>``) is scored by its top-k accuracy too.

    Example:
        >>> import pandas as pd
        >>> table = pd.DataFrame({"file": ["val/cat/1.jpg", "val/cat/2.jpg", "val/dog/3.jpg", "new.jpg"],
        ...                       "class": ["cat", "dog", "dog", "cat"], "class_2": ["dog", "cat", "cat", "dog"]})
        >>> folder_scores(table, ["cat", "dog"])
        {'files': 3, 'accuracy': 0.6666666666666666, 'balanced_accuracy': 0.75, 'top_k': 2, 'top_k_accuracy': 1.0}
    """
    known = set(classes)
    folders = [Path(f).parent.name for f in table["file"]]
    labeled = [i for i, folder in enumerate(folders) if folder in known]
    if not labeled:
        return None
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    truth, predicted = [folders[i] for i in labeled], table["class"].iloc[labeled].tolist()
    scores = {"files": len(labeled), "accuracy": float(accuracy_score(truth, predicted)),
              "balanced_accuracy": float(balanced_accuracy_score(truth, predicted))}
    ranked = ["class"] + [c for c in table.columns if c.startswith("class_")]
    if len(ranked) > 1:
        named = table[ranked].iloc[labeled].to_numpy()
        scores["top_k"] = len(ranked)
        scores["top_k_accuracy"] = float(np.mean([label in row for label, row in zip(truth, named)]))
    return scores
