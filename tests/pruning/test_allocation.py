"""Layer allocation against hand-worked numbers: ERK as the RigL paper's formula, with and without
the redistribution of a layer that would exceed density 1, uniform, global, and exact counts."""

from __future__ import annotations

import math

import pytest
import torch

from foundations.errors import UserError
from pruning.allocation import (
    allocate,
    counts_of,
    erk_densities,
    global_counts,
    kept_count,
    layer_densities,
    random_mask,
    uniform_densities,
)

# A: 10x20 (p = 30/200 = 0.15), B: 4x10 (p = 14/40 = 0.35), C: 2x4 (p = 6/8 = 0.75); 248 weights.
SHAPES = {"A": (10, 20), "B": (4, 10), "C": (2, 4)}


def test_erk_is_the_rigl_formula_when_no_layer_exceeds_one():
    # eps * (0.15*200 + 0.35*40 + 0.75*8) = 0.25 * 248  ->  eps = 62 / 50 = 1.24
    densities = erk_densities(SHAPES, 0.25)
    assert densities == pytest.approx({"A": 0.15 * 1.24, "B": 0.35 * 1.24, "C": 0.75 * 1.24})
    # n - floor((1 - d) n): A 200 - floor(162.8), B 40 - floor(22.64), C 8 - floor(0.56)
    assert counts_of(SHAPES, densities) == {"A": 38, "B": 18, "C": 8}


def test_erk_makes_a_layer_over_one_dense_and_redistributes_its_excess():
    # At 0.5: eps = 124 / 50 = 2.48 puts C at 1.86 > 1, so C is dense; the 4 weights it keeps beyond
    # the target come off A and B: eps = (100 + 20 - 4) / (30 + 14) = 116 / 44.
    densities = erk_densities(SHAPES, 0.5)
    eps = 116 / 44
    assert densities == pytest.approx({"A": 0.15 * eps, "B": 0.35 * eps, "C": 1.0})
    kept = 200 * densities["A"] + 40 * densities["B"] + 8 * densities["C"]
    assert kept == pytest.approx(0.5 * 248)  # the budget is kept exactly


def test_erk_redistributes_again_when_the_next_layer_exceeds_one():
    # At 0.9: C dense (eps*0.75 > 1), then eps = (180 + 36 - 0) / 44 = 4.909 puts B at 1.72: dense too;
    # A takes the rest: eps = (180 - 4 - 0) / 30 -> A at 0.15 * 176 / 30 = 0.88.
    densities = erk_densities(SHAPES, 0.9)
    assert densities == pytest.approx({"A": 0.15 * 176 / 30, "B": 1.0, "C": 1.0})


def test_erk_of_a_convolution_counts_its_kernel():
    shapes = {"conv": (8, 4, 3, 3), "fc": (10, 32)}  # p = 18/288 and 42/320
    # the budget counts whole weights as the RigL code does: 288 - floor(259.2) = 29, and 32
    eps = (29 + 32) / (18 + 42)
    assert erk_densities(shapes, 0.1) == pytest.approx({"conv": 18 / 288 * eps, "fc": 42 / 320 * eps})


def test_layers_with_their_own_density_are_left_out_of_the_budget():
    # C fixed dense and not counted: eps = (100 + 20) / (30 + 14)
    densities = erk_densities(SHAPES, 0.5, fixed={"C": 1.0})
    assert densities == pytest.approx({"A": 0.15 * 120 / 44, "B": 0.35 * 120 / 44, "C": 1.0})
    assert uniform_densities(SHAPES, 0.3, fixed={"A": 0.5}) == {"A": 0.5, "B": 0.3, "C": 0.3}


def test_kept_counts_are_the_rigl_codes_floor_of_the_zeros():
    assert kept_count(8, 0.1) == 1 and kept_count(10, 0.3) == 3 and kept_count(100, 0.2) == 20
    assert counts_of(SHAPES, layer_densities("uniform", SHAPES, 0.1)) == {"A": 20, "B": 4, "C": 1}


def test_global_counts_follow_one_magnitude_threshold():
    weights = {"A": torch.tensor([[0.9, -0.1], [0.05, 0.8]]), "B": torch.tensor([0.7, -0.6, 0.01, 0.2]),
               "C": torch.tensor([5.0, 5.0])}
    # the 5 largest of the 8 weights of A and B: 0.9, 0.8, 0.7, -0.6, 0.2; C fixed at density 0.5
    assert global_counts(weights, 5 / 8, fixed={"C": 0.5}) == {"A": 2, "B": 3, "C": 1}
    assert allocate("global", weights, 5 / 8, fixed={"C": 0.5}) == {"A": 2, "B": 3, "C": 1}


def test_a_random_mask_has_the_counts_and_depends_only_on_the_seed():
    counts = {"A": 37, "B": 17, "C": 7}
    mask = random_mask(SHAPES, counts, seed=3)
    assert {name: int(mask[name].sum()) for name in SHAPES} == counts
    assert mask == random_mask(SHAPES, counts, seed=3) and mask != random_mask(SHAPES, counts, seed=4)
    assert all(mask[name].shape == SHAPES[name] for name in SHAPES)


@pytest.mark.parametrize("density", [0.0, 1.5, -0.1])
def test_a_density_outside_zero_one_is_one_line(density):
    with pytest.raises(UserError, match=r"\(0, 1\]"):
        erk_densities(SHAPES, density)


def test_an_unknown_allocation_is_one_line():
    with pytest.raises(UserError, match="uniform, erk, global"):
        allocate("fancy", {"A": torch.zeros(2, 2)}, 0.5)


def test_density_one_keeps_everything():
    assert counts_of(SHAPES, erk_densities(SHAPES, 1.0)) == {name: math.prod(s) for name, s in SHAPES.items()}


def test_erk_scope_prunes_each_layer_to_its_erk_share_of_the_survivors():
    """Scope 'erk' of prune_in_rounds: the layers keep the ERK counts of the overall density, over
    1 round or 4 (the same end), ranked within each layer by the score (magnitude here)."""
    from types import SimpleNamespace

    from models import registry
    from pruning import allocation
    from pruning.mask import Mask
    from pruning.rounds import prune_in_rounds

    h = SimpleNamespace(model_name="mnist_lenet_16_8", model_init="kaiming_normal", batchnorm_init="uniform",
                        bias_init="pytorch", batchnorm_frozen=False, output_frozen=False)
    model = registry.get(h, (1, 28, 28), 10, 0)
    shapes = {name: tuple(model.state_dict()[name].shape) for name in model.prunable_layer_names}
    total = sum(math.prod(shape) for shape in shapes.values())  # 12,544 + 128 + 80
    kept = total - round(0.9 * total)
    # by hand: no layer exceeds density 1 here, so eps solves eps * sum_l (out_l + in_l) = the
    # weights the layers keep at the overall density (each layer's count, as the RigL code sums)
    density = kept / total
    ones = sum(math.prod(s) - math.floor((1 - density) * math.prod(s) + 1e-9) for s in shapes.values())
    eps = ones / sum(sum(shape) for shape in shapes.values())
    by_hand = {name: math.prod(shape) - math.floor((1 - eps * sum(shape) / math.prod(shape)) * math.prod(shape)
                                                   + 1e-9) for name, shape in shapes.items()}
    assert max(eps * sum(shape) / math.prod(shape) for shape in shapes.values()) < 1
    assert allocation.counts_of(shapes, allocation.erk_densities(shapes, kept / total)) == by_hand
    for rounds in (1, 4):
        mask = prune_in_rounds(model, "magnitude", 0.9, rounds, scope="erk")
        assert {name: int(mask[name].sum()) for name in shapes} == by_hand
    first = next(iter(shapes))
    weight = model.state_dict()[first].abs()
    assert weight[mask[first]].min() >= weight[~mask[first]].max()  # the largest magnitudes kept
    # a second level prunes only survivors: the mask shrinks, never regrows
    second = prune_in_rounds(model, "magnitude", 0.5, 1, mask=Mask(dict(mask.items())), scope="erk")
    assert all(bool((second[n] <= mask[n]).all()) for n in shapes)
