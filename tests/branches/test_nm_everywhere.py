"""N:M masks in every branch that makes one (issue 20): prune_in_rounds with --structure, the
iterative branches' levels, the reinitialize controls, and the sparse-training branches' start and
every change of their masks keep exactly N of every M consecutive inputs of every row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import branches.sparse.dynamic
import branches.sparse.gmp
from branches.sparse.update import drop_and_grow
from foundations.errors import UserError
from pruning import ScoringData, prune_in_rounds
from pruning.nm import grow_in_groups, kept_per_group
from tests.cli.test_train import one_line_error
from tests.conftest import TINY
from tests.pruning.test_nets import TinyCNN as _TinyCNN

LENET = ["fc_layers.0.weight", "fc_layers.1.weight"]  # 784 and 16 inputs per row; fc (8 inputs) too


def per_group(mask: torch.Tensor, m: int) -> torch.Tensor:
    """The kept count of every group of m consecutive inputs of every row."""
    return mask.reshape(mask.shape[0], -1).reshape(-1, m).sum(dim=1)


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def location(cli, name, *flags) -> Path:
    code, out, err = cli("branch", name, *TINY, *flags, "--display_output_location")
    assert code == 0, err
    return Path(out.strip())


def run(cli, name, *flags) -> Path:
    code, _, err = cli("branch", name, *TINY, *flags)
    assert code == 0, err
    return location(cli, name, *flags)


# ---- prune_in_rounds ----------------------------------------------------------------------------
class TinyCNN(_TinyCNN):
    """tests/pruning/test_nets' TinyCNN with conv2 (4 -> 8, 2x2: 16 inputs per row) and fc (8 -> 3)
    whole groups of 8; conv1 (9 inputs per row) is not."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.conv2, self.bn2 = torch.nn.Conv2d(4, 8, 2, padding=1), torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 3)


class Recording:
    """magnitude, recording the mask it scores under (one entry per round)."""

    def __init__(self):
        self.masks = []

    def __call__(self, model, mask, data):
        self.masks.append(mask)
        return {name: model.state_dict()[name].abs() for name in mask}


@pytest.mark.parametrize("strategy", ["magnitude", "random", "snip2", "synflow"])
@pytest.mark.parametrize("pattern, iterations", [("2:4", 1), ("1:4", 3), ("2:8", 2)])
def test_prune_in_rounds_keeps_exactly_n_of_every_m_in_every_row(strategy, pattern, iterations):
    n, m = map(int, pattern.split(":"))
    model = TinyCNN()
    examples = FakeExamples()
    mask = prune_in_rounds(model, strategy, None, iterations, structure=pattern, layers_to_ignore=["conv1.weight"],
                           data=ScoringData(examples=examples, seed=3, input_shape=(1, 5, 5)))
    assert mask["conv1.weight"].all()
    for name in ("conv2.weight", "fc.weight"):
        assert (per_group(mask[name], m) == n).all()
    same = prune_in_rounds(model, strategy, 1 - n / m, iterations, structure=pattern, layers_to_ignore=["conv1.weight"],
                           data=ScoringData(examples=examples, seed=3, input_shape=(1, 5, 5)))
    assert same == mask  # the fraction the pattern sets may be spelled out


class FakeExamples:
    def examples_per_class(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(3 * n, 1, 5, 5, generator=generator), torch.arange(3).repeat(n)


def test_the_rounds_decay_through_the_pattern_and_keep_the_highest_scores():
    model, score = TinyCNN(), Recording()
    mask = prune_in_rounds(model, score, None, 2, structure="2:8", layers_to_ignore=["conv1.weight"])
    # round 1 keeps round(8 * (2/8)**(1/2)) = 4 of every 8, round 2 keeps 2
    assert [int(per_group(m["fc.weight"], 8).unique()) for m in score.masks] == [8, 4]
    weights = model.state_dict()["fc.weight"].abs().reshape(-1, 8)
    kept = mask["fc.weight"].reshape(-1, 8)
    by_hand = torch.zeros_like(kept).scatter_(1, torch.sort(weights, dim=1, descending=True, stable=True)
                                              .indices[:, :2], True)
    assert torch.equal(kept, by_hand)  # one magnitude ranking: the two largest of each group
    lowest = prune_in_rounds(model, "magnitude", None, structure="2:8", highest=True, layers_to_ignore=["conv1.weight"])
    by_hand = torch.zeros_like(kept).scatter_(1, torch.sort(weights, dim=1, stable=True).indices[:, :2], True)
    assert torch.equal(lowest["fc.weight"].reshape(-1, 8), by_hand)  # highest: the largest go, the smallest stay
    assert [kept_per_group(2, 4, d) for d in (1.0, 0.8, 0.64, 0.51, 0.1)] == [4, 3, 3, 2, 2]


@pytest.mark.parametrize("kwargs, needle", [({"fraction": 0.3}, "--prune_fraction=0.3 contradicts"),
                                            ({"fraction": 0.5, "scope": "lamp"}, "--prune_scope=lamp"),
                                            ({"fraction": 0.5, "structure": "4:2"}, "N:M"),
                                            ({"fraction": 0.5, "layers_to_ignore": ()}, "conv1.weight has 9 inputs")])
def test_contradictions_are_user_errors(kwargs, needle):
    kwargs = {"structure": "2:4", "layers_to_ignore": ["conv1.weight"], **kwargs}
    with pytest.raises(UserError, match=needle):
        prune_in_rounds(TinyCNN(), "magnitude", kwargs.pop("fraction"), **kwargs)


# ---- the iterative branches ---------------------------------------------------------------------
def test_iterative_levels_decay_to_n_of_m_by_the_previous_levels_magnitudes(cli):
    path = run(cli, "iterative", "--levels=3", "--structure=4:8")
    code, out, err = cli("train", *TINY, "--display_output_location")
    trunk = Path(out.strip())
    for level, kept in ((1, 6), (2, 5), (3, 4)):  # round(8 * 0.8**L): 6.4, 5.12, 4.10
        mask, before = load(path / f"level_{level}" / "mask.pt"), load(path / f"level_{level - 1}" / "mask.pt")
        weights = load((trunk if level == 1 else path / f"level_{level - 1}") / "model_ep3_it0.pt")
        assert mask["fc.weight"].all()  # LeNet's output layer: IMP's default to ignore
        for name in LENET:
            assert (per_group(mask[name], 8) == kept).all()
            assert not (mask[name] & ~before[name]).any()
            groups = weights[name].abs().reshape(-1, 8).masked_fill(~before[name].reshape(-1, 8), -1)
            by_hand = torch.zeros_like(groups, dtype=torch.bool).scatter_(
                1, torch.sort(groups, dim=1, descending=True, stable=True).indices[:, :kept], True)
            assert torch.equal(mask[name].reshape(-1, 8), by_hand)
    sparsity = json.loads((path / "level_3" / "sparsity.json").read_text())["layers"]
    assert sparsity["fc_layers.0.weight"]["unpruned"] == 784 * 16 // 2


@pytest.mark.parametrize("control", ["shuffle_layerwise", "shuffle_global"])
def test_the_shuffle_controls_of_an_n_m_ticket_stay_n_m(cli, control):
    flags = ["--levels=1", "--structure=2:4", "--pruning_fraction=0.5"]
    path = run(cli, "reinitialize", *flags, f"--control={control}")
    ticket = load(location(cli, "iterative", *flags) / "level_1" / "mask.pt")
    mask = load(path / "level_1" / "mask.pt")
    for name in LENET:
        assert (per_group(mask[name], 4) == 2).all() and (per_group(ticket[name], 4) == 2).all()
        assert not torch.equal(mask[name], ticket[name])


@pytest.mark.parametrize("name, flags, needles", [
    ("iterative", ["--structure=2:4", "--prune_structure=neurons"], ["give one of them"]),
    ("iterative", ["--structure=2:4", "--prune_scope=erk"], ["--prune_scope=erk"]),
    ("iterative", ["--structure=2:5"], ["fc_layers.0.weight has 784 inputs", "--prune_layers_to_ignore"]),
    ("rewinding", ["--structure=2:3", "--rewind_step=1ep"], ["784 inputs"]),
    ("set", ["--structure=2:4", "--train_density=0.3"], ["--train_density=0.5"]),
    ("rigl", ["--structure=2:4", "--train_density=0.5", "--allocation=global"], ["leave --allocation out"]),
    ("gmp", ["--structure=2:4", "--final_density=0.25"], ["--final_density=0.5"]),
    ("static-sparse", ["--structure=2:5", "--train_density=0.4"], ["not a multiple of 5"]),
])
def test_bad_structures_are_one_line(cli, name, flags, needles):
    code, _, err = cli("branch", name, *TINY, "--levels=1", *flags) if name in ("iterative", "rewinding") else \
        cli("branch", name, *TINY, *flags)
    one_line_error(code, err, *needles)
    assert not any(cli.root.rglob("done.json"))


# ---- sparse training ----------------------------------------------------------------------------
def test_a_grouped_drop_and_grow_by_hand():
    weight = torch.tensor([[0.5, -0.1, 0.0, 0.0, 0.3, 0.0, 0.2, 0.0]])
    mask = weight != 0  # 2 of every 4
    grow = torch.tensor([[0.0, 0.0, 0.9, 0.1, 0.0, 0.8, 0.0, 0.7]])
    update = drop_and_grow(weight, mask, 0.5, grow, group_size=4)
    # drop int(4 * 0.5) = 2 smallest |w|: -0.1 (group 0) and 0.2 (group 1); each group regrows one:
    # group 0 its largest grow score among inactive (0.9 at 2), group 1 (0.8 at 5; 0.7 at 7 loses)
    assert update.mask.int().tolist() == [[1, 0, 1, 0, 1, 1, 0, 0]]
    assert update.new_connections.int().tolist() == [[0, 0, 1, 0, 0, 1, 0, 0]]
    unstructured = drop_and_grow(weight, mask, 0.5, grow)  # the same drop, grown by score across groups
    assert unstructured.mask.int().tolist() == [[1, 0, 1, 0, 1, 1, 0, 0]] and update.dropped == 2
    # a just-dropped weight may come back (the RigL code's rule) and NaN/inf scores never win
    kept = torch.tensor([True, False, False, False])
    assert grow_in_groups(kept, torch.tensor([True, True, False, False]), torch.tensor([0., 5., float("nan"), -1.]),
                          4).tolist() == [True, True, False, False]


def test_many_random_grouped_updates_keep_every_group_at_n():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(16, 24, generator=generator)
    mask = torch.zeros(16, 24, dtype=torch.bool).reshape(-1, 8)
    mask.scatter_(1, torch.rand(mask.shape, generator=generator).argsort(dim=1)[:, :3], True)
    mask = mask.reshape(16, 24)
    for _ in range(20):
        mask = drop_and_grow(weight * mask, mask, 0.4, torch.rand(16, 24, generator=generator), 8).mask
        assert (per_group(mask, 8) == 3).all()
        weight = torch.randn(16, 24, generator=generator)


@pytest.mark.parametrize("name, flags", [
    ("static-sparse", ["--train_density=0.5"]),
    ("set", ["--train_density=0.5", "--update_every=2it"]),
    ("rigl", ["--train_density=0.5", "--update_every=2it", "--drop_fraction=0.5"]),
    ("gmp", ["--final_density=0.5", "--prune_every=2it"]),
])
def test_sparse_branches_keep_n_of_m_at_the_start_and_after_every_change(cli, monkeypatch, name, flags):
    masks = []
    real_update, real_prune = branches.sparse.dynamic.drop_and_grow, branches.sparse.gmp.prune_to_schedule

    def spy_update(*args, **kwargs):
        update = real_update(*args, **kwargs)
        masks.append({"layer": update.mask})
        return update

    def spy_prune(*args, **kwargs):
        result = real_prune(*args, **kwargs)
        masks.append(dict(result))
        return result

    monkeypatch.setattr(branches.sparse.dynamic, "drop_and_grow", spy_update)
    monkeypatch.setattr(branches.sparse.gmp, "prune_to_schedule", spy_prune)
    path = run(cli, name, *flags, "--structure=2:4")
    start, final = load(path / "training" / "mask.pt"), load(path / "mask.pt")
    assert final["fc.weight"].all()  # an MLP's output layer stays dense (the RigL code's MNIST choice)
    for name_ in LENET:
        assert (per_group(final[name_], 4) == 2).all()
        if name != "gmp":
            assert (per_group(start[name_], 4) == 2).all()
    assert len(masks) >= (0 if name == "static-sparse" else 3)
    for changed in masks:
        for layer, tensor in changed.items():
            if layer in LENET or layer == "layer":
                counts = per_group(tensor, 4)
                assert ((counts == 2).all() if name != "gmp" else ((counts >= 2) & (counts == counts[0])).all())
    if name in ("set", "rigl"):
        assert any(not torch.equal(start[n], final[n]) for n in LENET)  # the mask did move
    if name == "gmp":
        control = location(cli, "static-sparse", "--train_density=0.5", "--structure=2:4",
                           "--allocation=uniform")
        assert control == location(cli, "static-sparse", "--train_density=0.5", "--structure=2:4")
