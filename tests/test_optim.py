"""The optimizer, schedule and weight-averaging factories of autocls.training.optim."""
from __future__ import annotations

import pytest
import torch

from autocls.training import TrainConfig
from autocls.training.config import CHOICES
from autocls.training.optim import RampedAverage, build_optimizer, build_scheduler


def _lrs(cfg: TrainConfig, steps_per_epoch: int) -> list[list[float]]:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = build_optimizer(cfg, model.parameters())
    sched = build_scheduler(cfg, opt, steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return lrs  # each step's


def test_the_triangle_schedule_is_airbench94s():
    """0.2x the peak at the start, the peak at 23% of the steps, 0.07x at the end, linear between, per group."""
    lrs = _lrs(TrainConfig(epochs=10, lr=0.5, bias_lr_scale=64, scheduler="triangle"), steps_per_epoch=20)
    weights = [w for w, _ in lrs]
    assert weights[0] == pytest.approx(0.1)
    assert max(weights) == pytest.approx(0.5) and weights.index(max(weights)) == pytest.approx(46, abs=1)
    assert weights[-1] == pytest.approx(0.035)
    assert weights[100] - weights[101] == pytest.approx(weights[150] - weights[151])  # linear, not cosine
    assert all(b == pytest.approx(64 * w) for w, b in lrs)


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))


def test_the_ramped_average_copies_its_average_into_the_model_every_fifth_step():
    net = _net()
    weight, running_mean = net[0].weight, net[1].running_mean
    average = RampedAverage(net, total_steps=10)
    with torch.no_grad():
        for step in range(1, 11):
            weight.fill_(float(step))
            running_mean.fill_(float(step))
            average.update()
            if step == 5:  # the first update starts the average: nothing to blend yet
                assert weight.item() == 5.0
    decay = 0.95 ** 5 * (10 / 10) ** 3  # at the last step the full decay
    expected = decay * 5.0 + (1 - decay) * 10.0
    assert weight.item() == pytest.approx(expected) and running_mean.item() == pytest.approx(expected)


def test_the_ramped_average_barely_holds_back_early_steps_and_sync_drops_the_steps_since_its_last_update():
    net = _net()
    weight = net[0].weight
    average = RampedAverage(net, total_steps=1000)
    with torch.no_grad():
        for step in range(1, 11):
            weight.fill_(float(step))
            average.update()
        assert weight.item() == pytest.approx(10.0, abs=1e-4)  # decay (10/1000)^3 * 0.77: the model runs free
        weight.fill_(99.0)
        average.sync()
    assert weight.item() == pytest.approx(10.0, abs=1e-4)


@pytest.mark.parametrize("name", CHOICES["optimizer"])
def test_every_optimizer_the_recipe_accepts_is_the_one_it_names_and_steps(name):
    model = torch.nn.Linear(3, 1)
    opt = build_optimizer(TrainConfig(optimizer=name, lr=0.01), model.parameters())
    assert type(opt).__name__.lower() == name
    before = model.weight.detach().clone()
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    assert not torch.equal(model.weight, before)


@pytest.mark.parametrize("name", [s for s in CHOICES["scheduler"] if s != "plateau"])
def test_every_schedule_the_recipe_accepts_warms_up_to_its_peak_and_runs_its_length(name):
    lrs = [w for w, _ in _lrs(TrainConfig(epochs=4, lr=0.1, scheduler=name, warmup_epochs=1), steps_per_epoch=10)]
    assert len(lrs) == 40 and all(0 < lr <= 0.1 + 1e-9 for lr in lrs)
    assert lrs[0] < 0.05 and max(lrs) == pytest.approx(0.1, rel=0.05)


def test_the_plateau_schedule_is_stepped_by_its_evaluations():
    model = torch.nn.Linear(3, 1)
    cfg = TrainConfig(scheduler="plateau", lr=0.1, gamma=0.5)
    opt = build_optimizer(cfg, model.parameters())
    sched = build_scheduler(cfg, opt, steps_per_epoch=10)
    for _ in range(4):  # no gain for more than its patience (2): the rate falls by gamma
        sched.step(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
