"""Which epoch a run should keep when its val split is small: each rule's test accuracy, from the same runs.

A user's own folder of a few hundred photos leaves a val split of a few dozen images, where val top-1 moves
in steps of one image and its noise is several points.  Each run here trains the preset's first seed recipe on
``--train-per-class`` images of each class of the shared CIFAR-10 photos, with ``--val-per-class`` val images
each, and scores every epoch's weights (``last.pt``, written every epoch) on 500 held-out test photos per class.
The rules are then applied to the same per-epoch records, side by side:

- *first best*: the first epoch of the highest val score (the trainer's rule before 2026-12-03);
- *latest best*: the latest epoch of the highest val score (ties go to the longer-trained weights);
- *last*: the last epoch, whatever val says (airbench's rule: its schedule anneals to the end);
- *within a SE*: the latest epoch within one standard error (``sqrt(p(1-p)/n)``) of the highest val score ``p``,
  the reasoning of ``autocls.ensemble.build.tta_by_val`` applied to epochs.

    python benchmarks/best_epoch.py --train-per-class 72 --val-per-class 8 --epochs 7 --seeds 6
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _shared_data import cifar10_jpg_folder, split_folders  # noqa: E402

from autocls.artifacts import TrialArtifacts  # noqa: E402
from autocls.data import prepare_data  # noqa: E402
from autocls.data.augment import BatchAugment  # noqa: E402
from autocls.inference import predict_proba  # noqa: E402
from autocls.metrics import accuracy_standard_error  # noqa: E402
from autocls.models.registry import model_from_config  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402
from autocls.training import Runtime, TrainConfig, train  # noqa: E402
from autocls.training.trainer import run_identity  # noqa: E402

RULES = {  # each: the index of the epoch kept, from the val scores of every epoch and the val split's size
    "first best": lambda val, n: val.index(max(val)),
    "latest best": lambda val, n: len(val) - 1 - val[::-1].index(max(val)),
    "last": lambda val, n: len(val) - 1,
    "within a SE": lambda val, n: max(i for i, v in enumerate(val)
                                      if v >= max(val) - accuracy_standard_error(max(val), n)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="cpu-small")
    parser.add_argument("--train-per-class", type=int, default=72)
    parser.add_argument("--val-per-class", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autocls-best-epoch-"))
    (work / "jpg").mkdir()
    folder = split_folders(cifar10_jpg_folder(args.train_per_class + args.val_per_class + 500, work / "jpg"),
                           work / "split", val=args.val_per_class, test=500)
    data = prepare_data(str(folder))
    space = SearchSpace.load(args.space)
    cfg = TrainConfig.from_dict({**space.fixed, **space.seeds[0], "epochs": args.epochs})
    normalize = BatchAugment(data.mean, data.std).normalize
    print(f"{len(data.train_y)} training, {len(data.val_y)} val, {len(data.test_y)} test images; {cfg.model} "
          f"x{cfg.width}, {args.epochs} epochs of {cfg.epoch_images} images", flush=True)
    kept = {rule: [] for rule in RULES}
    for seed in range(args.seeds):
        runtime = Runtime(seed=seed, checkpoint_share=1.0)  # last.pt after every epoch: each epoch's weights
        out = work / f"seed{seed}"
        checkpoints = TrialArtifacts(out, run_identity(cfg, runtime))
        model = model_from_config(cfg.to_dict(), data.num_classes)
        val, test = [], []

        def score_epoch(metrics: dict) -> None:
            model.load_state_dict(checkpoints.load_checkpoint("cpu")["model"])
            probs = predict_proba(model, data.test_x, normalize, channels_last=cfg.channels_last, amp=cfg.amp)
            val.append(metrics["val_acc"])
            test.append(float((probs.argmax(1) == data.test_y).float().mean()))

        train(cfg, data, reporter=score_epoch, out_dir=out, runtime=runtime)
        picked = {rule: pick(val, len(data.val_y)) for rule, pick in RULES.items()}
        line = "  ".join(f"{rule} {test[epoch]:.2%} (ep {epoch + 1})" for rule, epoch in picked.items())
        print(f"seed {seed}: val {' '.join(f'{v:.3f}' for v in val)} | test {' '.join(f'{t:.3f}' for t in test)}\n"
              f"        {line}", flush=True)
        for rule, epoch in picked.items():
            kept[rule].append(test[epoch])
    print(f"\n{'rule':12s} {'mean test':>9s} {'- first best':>12s}   per seed")
    base = statistics.mean(kept["first best"])
    for rule, accs in kept.items():
        print(f"{rule:12s} {statistics.mean(accs):9.2%} {100 * (statistics.mean(accs) - base):+11.2f}p   "
              + " ".join(f"{a:.2%}" for a in accs))


if __name__ == "__main__":
    main()
