"""The CUDA-only paths of the trainer: run where a GPU is present, skipped elsewhere.

On a lent GPU machine: ``python -m pytest -q tests/test_gpu.py tests/test_training.py``
(the resume test there also runs on CUDA).
"""
import pytest
import torch

from autocls.data import prepare_data
from autocls.training import Runtime, TrainConfig, train
from autocls.training import trainer as trainer_module

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def digits():
    return prepare_data("digits")


# The recipe of both tests reaches 0.90 on CPU (seeds 0 and 1, 2026-12-01); the AutoAugment family on the GPU is
# tested by test_training.py's recipe matrix, which runs on CUDA here.
LEARNS = dict(model="resnet9", width=0.25, epochs=4, batch_size=64, lr=0.05, crop_padding=1)


def test_bf16_channels_last_learns_on_the_gpu(digits):
    cfg = TrainConfig(**LEARNS, amp=True, channels_last=True)
    result = train(cfg, digits, runtime=Runtime(device="cuda"))
    assert result.status == "complete" and result.best_val_acc > 0.6


def test_data_too_big_for_the_gpu_stays_in_pinned_host_memory(digits, monkeypatch):
    free, total = torch.cuda.mem_get_info()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1024, total))  # "1 KiB free"
    data = prepare_data("digits")
    assert trainer_module._data_device(data, torch.device("cuda")).type == "cpu"
    assert data.train_x.is_pinned()
    result = train(TrainConfig(**LEARNS), data, runtime=Runtime(device="cuda"))
    assert result.status == "complete" and result.best_val_acc > 0.6
