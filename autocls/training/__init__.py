"""One training run: config as plain data, optimizers and schedules, losses, the trainer."""
from autocls.training.config import TrainConfig
from autocls.training.losses import class_balanced_weights
from autocls.training.trainer import TrainResult, predict_proba, train

__all__ = ["TrainConfig", "TrainResult", "class_balanced_weights", "predict_proba", "train"]
