"""One training run: recipe and runtime as plain data, optimizers and schedules, losses, the trainer."""
from autocls.training.config import Runtime, TrainConfig
from autocls.training.losses import class_balanced_weights
from autocls.training.trainer import TrainResult, predict_proba, train

__all__ = ["Runtime", "TrainConfig", "TrainResult", "class_balanced_weights", "predict_proba", "train"]
