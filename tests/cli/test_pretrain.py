"""Pretraining before the lottery (OpenLTH's --pretrain_* flags): the pretraining run is itself a
trunk, the main training and the lottery start from exactly its final weights, the flags are in
the trunk's hash only when given, and bad combinations are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import models.registry as models_registry
from foundations.bundles import DatasetHparams, ModelHparams, TrainingHparams
from foundations.desc import TrainDesc
from foundations.errors import UserError
from runs.trunk import _fitted
from tests.cli.test_branches import load, location
from tests.cli.test_train import one_line_error
from tests.conftest import TINY

PRETRAIN = ["--pretrain_training_steps=2ep", "--pretrain_lr=0.05"]
PRETRAINING_TRUNK = [*TINY, "--training_steps=2ep", "--lr=0.05"]  # what `train` makes of the pretraining


def test_the_lottery_starts_from_exactly_the_pretrained_weights(cli):
    code, _, err = cli("branch", "iterative", *TINY, *PRETRAIN, "--levels=1")
    assert code == 0, err
    pretrained = location(cli, "train", *PRETRAINING_TRUNK)  # the pretraining is this very trunk
    assert json.loads((pretrained / "done.json").read_text())["final_step"] == "2ep0it"
    final = load(pretrained / "model_ep2_it0.pt")
    trunk = location(cli, "train", *TINY, *PRETRAIN)
    start = load(trunk / "model_ep0_it0.pt")
    assert start.keys() == final.keys() and all(torch.equal(start[k], final[k]) for k in final)
    tickets = location(cli, "branch", "iterative", *TINY, *PRETRAIN, "--levels=1")
    level_start, mask = load(tickets / "level_1" / "model_ep0_it0.pt"), load(tickets / "level_1" / "mask.pt")
    for name, tensor in final.items():  # the ticket rewinds to the pretrained weights, under its mask
        expected = tensor * mask[name] if name in mask else tensor
        assert torch.equal(level_start[name], expected)
    fresh = load(pretrained / "model_ep0_it0.pt")  # the same draw as a plain trunk's, before pretraining
    assert not torch.equal(fresh["fc_layers.0.weight"], start["fc_layers.0.weight"])


def test_a_dataset_with_other_classes_keeps_the_trunk_s_own_output_layer():
    h = ModelHparams(model_name="mnist_lenet_16_8")
    ten = models_registry.get(h, (1, 28, 28), 10, seed=1)
    three = models_registry.get(h, (1, 28, 28), 3, seed=2).state_dict()  # pretrained on 3 classes
    fitted = _fitted(ten, three, "iris")
    for name, tensor in ten.state_dict().items():
        assert torch.equal(fitted[name], tensor if name in ten.output_layer_names else three[name])
    other_inputs = models_registry.get(h, (1, 14, 14), 10, seed=2).state_dict()
    with pytest.raises(UserError, match="another shape"):
        _fitted(ten, other_inputs, "small")


def test_pretraining_flags_are_hashed_only_when_given():
    plain = TrainDesc(DatasetHparams("mnist", 64), ModelHparams("mnist_lenet_16_8"), TrainingHparams("sgd", 0.1, "3ep"))
    assert plain.training.pretraining() is None
    assert "pretrain" not in plain.training.canonical()
    pre = TrainDesc(plain.dataset, plain.model, plain.training.replace(pretrain_training_steps="2ep"))
    assert pre.hash != plain.hash and "pretrain_training_steps='2ep'" in pre.training.canonical()
    recipe = pre.training.replace(pretrain_lr=0.05, pretrain_milestone_steps="1ep", pretrain_gamma=0.1).pretraining()
    assert (recipe.lr, recipe.training_steps, recipe.milestone_steps, recipe.gamma) == (0.05, "2ep", "1ep", 0.1)
    assert (recipe.optimizer_name, recipe.momentum) == ("sgd", 0.0) and recipe.pretraining() is None


@pytest.mark.parametrize("flags, needles", [
    (["--pretrain_lr=0.1"], ["--pretrain_lr", "--pretrain_training_steps"]),
    (["--pretrain_training_steps=0ep"], ["pretrain_training_steps"]),
    (["--pretrain_training_steps=1ep", "--pretrain_milestone_steps=1ep"], ["--pretrain_gamma"]),
])
def test_bad_pretraining_flags_are_one_line(cli, flags, needles):
    code, _, err = cli("train", *TINY, *flags)
    one_line_error(code, err, *needles)
    assert not any(cli.root.rglob("done.json"))


def test_a_replayed_step_of_a_pretrained_trunk_replays_from_the_pretrained_weights(cli, tmp_path):
    asked_first = tmp_path / "first"
    assert cli("train", *TINY, *PRETRAIN, "--weight_save_steps=1ep", root_dir=asked_first)[0] == 0
    assert cli("train", *TINY, *PRETRAIN)[0] == 0
    assert cli("train", *TINY, *PRETRAIN, "--weight_save_steps=1ep")[0] == 0  # a replay of the finished trunk
    later = location(cli, "train", *TINY, *PRETRAIN)
    first = asked_first / later.relative_to(cli.root)
    a, b = load(first / "model_ep1_it0.pt"), load(later / "model_ep1_it0.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_on_another_dataset_is_that_dataset_s_trunk(tmp_path, capsys):
    import open_prune
    from tests.tiny_data import write_tiny_mnist

    data = write_tiny_mnist(tmp_path / "data")
    (write_tiny_mnist(tmp_path / "fashion", seed=7) / "MNIST").rename(data / "FashionMNIST")
    common = [f"--root={tmp_path / 'runs'}", f"--dataset_root={data}", "--device=cpu"]
    flags = [*TINY, "--pretrain_training_steps=1ep", "--pretrain_dataset_name=fashionmnist",
             "--pretrain_batch_size=32"]
    assert open_prune.main(["train", *flags, *common]) == 0
    fashion = [{"--dataset_name=mnist": "--dataset_name=fashionmnist", "--batch_size=64": "--batch_size=32"}.get(f, f)
               for f in TINY if "training_steps" not in f]  # the same model flags
    capsys.readouterr()
    assert open_prune.main(["train", *fashion, "--training_steps=1ep", *common, "--display_output_location"]) == 0
    pretrained = Path(capsys.readouterr().out.strip())
    assert json.loads((pretrained / "done.json").read_text())["final_step"] == "1ep0it"  # 256 / 32 = 8 steps
    stored = json.loads((pretrained / "hparams.json").read_text())["hparams"]
    assert stored["dataset"]["dataset_name"] == "fashionmnist" and stored["dataset"]["batch_size"] == 32
