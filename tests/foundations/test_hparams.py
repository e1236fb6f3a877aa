"""Hparams ↔ argparse ↔ canonical string ↔ JSON, and the hashes built on them."""

import hashlib
from dataclasses import dataclass
from typing import Optional

import pytest

from foundations.bundles import DatasetHparams, ModelHparams, TrainingHparams
from foundations.cli import Parser
from foundations.desc import TrainDesc, hash_bundles
from foundations.errors import UserError
from foundations.hparams import hparam
from foundations.seeds import derive_seed


def lenet_desc(**training) -> TrainDesc:
    return TrainDesc(DatasetHparams("fashionmnist", 128), ModelHparams("fashionmnist_lenet_300_100"),
                     TrainingHparams("sgd", 0.1, "40ep", **training))


def parse(argv, defaults=None):
    parser = Parser(prog="test")
    for key, bundle in (("dataset", DatasetHparams), ("model", ModelHparams), ("training", TrainingHparams)):
        bundle.add_args(parser, defaults=(defaults or {}).get(key))
    args = parser.parse_args(argv)
    return TrainDesc(DatasetHparams.from_args(args), ModelHparams.from_args(args), TrainingHparams.from_args(args))


def test_flags_round_trip_to_the_same_bundles():
    argv = ["--dataset_name=cifar10", "--batch_size=64", "--do_not_augment", "--model_name=cifar_resnet_20",
            "--optimizer_name=sgd", "--lr=0.1", "--training_steps=2ep10it", "--momentum=0.9",
            "--milestone_steps=1ep,2ep", "--gamma=0.1", "--nesterov=false", "--subsample_fraction=0.5"]
    desc = parse(argv)
    assert desc.dataset == DatasetHparams("cifar10", 64, do_not_augment=True, subsample_fraction=0.5)
    assert desc.training.milestone_steps == "1ep,2ep" and desc.training.nesterov is False
    # every field written back as a flag parses to the same bundles
    back = []
    for bundle in desc.bundles().values():
        back += [f"--{k}={v}" for k, v in bundle.to_dict().items() if v is not None]
    assert parse(back) == desc


def test_default_hparams_fill_required_fields_and_flags_override_them():
    defaults = {"dataset": {"dataset_name": "mnist", "batch_size": 128},
                "model": {"model_name": "mnist_lenet_300_100"},
                "training": {"optimizer_name": "sgd", "lr": 0.1, "training_steps": "40ep"}}
    desc = parse(["--lr=0.05"], defaults)
    assert desc.training.lr == 0.05 and desc.training.training_steps == "40ep"
    assert desc.dataset.dataset_name == "mnist"


def test_missing_required_flag_is_one_user_error():
    with pytest.raises(UserError, match="--lr"):
        parse(["--dataset_name=mnist", "--batch_size=1", "--model_name=x", "--optimizer_name=sgd",
               "--training_steps=1ep"])


def test_canonical_string_omits_defaults_and_json_round_trips():
    h = TrainingHparams("sgd", 0.1, "40ep", momentum=0.0, gamma=None)
    assert h.canonical() == "TrainingHparams(optimizer_name='sgd', lr=0.1, training_steps='40ep')"
    h2 = TrainingHparams("sgd", 0.1, "40ep", momentum=0.9)
    assert "momentum=0.9" in h2.canonical()
    assert TrainingHparams.from_dict(h2.to_dict()) == h2


def test_fixed_hashes_do_not_change():
    # Regression: these hashes name run directories on users' disks. Never change them.
    canonical = ("dataset=DatasetHparams(dataset_name='fashionmnist', batch_size=128);"
                 "model=ModelHparams(model_name='fashionmnist_lenet_300_100');"
                 "training=TrainingHparams(optimizer_name='sgd', lr=0.1, training_steps='40ep')")
    assert lenet_desc().hash == hashlib.sha256(canonical.encode()).hexdigest()[:20] == "009fc9a466849cd26b73"
    assert lenet_desc(momentum=0.9, weight_decay=1e-4).hash == "b80a620bfe37eff58b39"


def test_a_new_default_off_field_keeps_old_hashes():
    @dataclass
    class TrainingHparamsWithNewField(TrainingHparams):
        brand_new_option: Optional[int] = hparam(None, "a field added in a later version")

    old = TrainingHparams("sgd", 0.1, "40ep")
    new = TrainingHparamsWithNewField("sgd", 0.1, "40ep")
    # The canonical string carries the class name, so compare the hashes as the runner builds them.
    TrainingHparamsWithNewField.__name__ = "TrainingHparams"
    assert hash_bundles({"training": new}) == hash_bundles({"training": old})
    assert hash_bundles({"training": new.replace(brand_new_option=3)}) != hash_bundles({"training": old})


def test_int_given_for_float_is_a_float_and_changes_no_hash():
    assert TrainingHparams("sgd", 1, "1ep").canonical() == TrainingHparams("sgd", 1.0, "1ep").canonical()


@pytest.mark.parametrize("kwargs, message", [
    (dict(training_steps="40 epochs"), "not a step"),
    (dict(milestone_steps="80ep,oops"), "not a step"),
    (dict(milestone_steps="80ep"), "needs --gamma"),
    (dict(lr=-1.0), "positive learning rate"),
])
def test_bad_training_hparams_are_user_errors(kwargs, message):
    base = dict(optimizer_name="sgd", lr=0.1, training_steps="1ep")
    with pytest.raises(UserError, match=message):
        TrainingHparams(**{**base, **kwargs})


@pytest.mark.parametrize("field", ["subsample_fraction", "random_labels_fraction"])
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1])
def test_fractions_outside_the_unit_interval_are_user_errors(field, value):
    with pytest.raises(UserError, match="outside"):
        DatasetHparams("mnist", 128, **{field: value})


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(UserError, match="sgd, adam, adamw"):
        TrainingHparams("rmsprop", 0.1, "1ep")


def test_seeds_derive_from_the_replicate_and_explicit_seeds_win():
    desc = lenet_desc()
    seeds = desc.seeds(replicate=3)
    assert seeds == {"init": derive_seed(3, "init"), "data_order": derive_seed(3, "data_order"),
                     "transformation": derive_seed(3, "transformation")}
    assert len(set(seeds.values())) == 3
    assert desc.seeds(3) != desc.seeds(4)
    assert derive_seed(1, "init") == 1116717933  # stable across machines and versions
    explicit = TrainDesc(desc.dataset, desc.model.replace(init_seed=7), desc.training)
    assert explicit.seeds(3)["init"] == 7


def test_run_path_layout(tmp_path):
    desc = lenet_desc()
    assert desc.run_path(tmp_path, 2) == tmp_path / f"train_{desc.hash}" / "replicate_2" / "main"
