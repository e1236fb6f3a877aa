import pytest
import torch

from foundations.bundles import TrainingHparams
from training.optimizers import LRSchedule, build_optimizer


def test_milestones_and_gamma():
    h = TrainingHparams("sgd", 0.1, "160ep", milestone_steps="80ep,120ep", gamma=0.1)
    lr = LRSchedule(h, iterations_per_epoch=391)
    assert lr(0) == pytest.approx(0.1)
    assert lr(80 * 391 - 1) == pytest.approx(0.1)
    assert lr(80 * 391) == pytest.approx(0.01)
    assert lr(120 * 391) == pytest.approx(0.001)
    assert lr(160 * 391) == pytest.approx(0.001)


def test_linear_warmup_then_milestones():
    h = TrainingHparams("sgd", 0.4, "90ep", warmup_steps="5ep", milestone_steps="30ep,60ep,80ep", gamma=0.1)
    lr = LRSchedule(h, iterations_per_epoch=100)
    assert lr(0) == 0.0
    assert lr(250) == pytest.approx(0.2)  # halfway through warmup
    assert lr(500) == pytest.approx(0.4)
    assert lr(6000) == pytest.approx(0.004)
    assert lr(8999) == pytest.approx(0.0004)


def test_optimizer_choice_and_decay():
    model = torch.nn.Linear(3, 2)
    sgd = build_optimizer(TrainingHparams("sgd", 0.1, "1ep", momentum=0.9, weight_decay=1e-4, nesterov=True), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 1e-4
    assert isinstance(build_optimizer(TrainingHparams("adamw", 1e-3, "1ep"), model), torch.optim.AdamW)
    model.bias.requires_grad_(False)
    adam = build_optimizer(TrainingHparams("adam", 1e-3, "1ep"), model)
    assert sum(len(g["params"]) for g in adam.param_groups) == 1  # frozen parameters are not optimized
