"""The orderedness branch's controls and schedules against hand computation and brute force:
the progress a rule reads, how each null is pruned, the nulls' values, and the paired test."""

from __future__ import annotations

import math

import pytest
import torch

from branches.orderedness.nulls import compare, keep_largest, keep_random, null_pruning, paired_test, replay
from branches.orderedness.step_rules import progress_schedule
from orderedness import brute_force_orderedness, exact_orderedness, shuffled_entries
from pruning import rules


def test_progress_is_epoch_over_epochs_or_steps_over_steps():
    assert progress_schedule(3, 6, "epoch") == [0, 0, 0, 0.5, 0.5, 0.5]  # the paper's: never reaches 1
    assert progress_schedule(3, 6, "step") == [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0]
    assert progress_schedule(1, 4, "epoch") == [0, 0.25, 0.5, 0.75]


def test_keep_largest_and_keep_random_keep_exactly_n_entries_with_their_values():
    weights = torch.randn(5, 4, 6, generator=torch.Generator().manual_seed(0))
    largest = keep_largest(weights, 7)
    for original, pruned in zip(weights, largest):
        kept = pruned != 0
        assert int(kept.sum()) == 7 and torch.equal(pruned[kept], original[kept])
        assert original.abs()[kept].min() > original.abs()[~kept].max()
    drawn = keep_random(weights, 7, torch.Generator().manual_seed(1))
    assert all(int((d != 0).sum()) == 7 and torch.equal(d[d != 0], w[d != 0]) for d, w in zip(drawn, weights))
    assert not torch.equal(drawn[0] != 0, drawn[1] != 0)  # each draw its own positions
    assert torch.equal(keep_largest(weights, 24), weights) and not keep_largest(weights, 0).any()


def test_replay_applies_the_rule_at_every_progress_value():
    weights = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(2))
    lower = torch.ones(4, 6).tril(-1).bool()
    damped = replay(weights, lambda: rules.get("tril_damp", damping=0.5), [0.1, 0.2, 0.3])
    torch.testing.assert_close(damped, torch.where(lower, weights * 0.125, weights))  # (1 - 0.5)^3
    ramped = replay(weights, lambda: rules.get("dyn_tril_damp", damping=0.8), [0.0, 0.5])
    factor = (1 - 0.8 * math.sin(math.pi / 4) ** 4)  # 0 at x = 0, then 0.8 sin^4(pi/4) = 0.2
    torch.testing.assert_close(ramped, torch.where(lower, weights * factor, weights))
    assert torch.equal(replay(weights, lambda: rules.get("tril_prune"), [0.0]), weights.triu())
    mask = rules.get("random", prune_fraction=0.5, seed=9)
    mask.apply(torch.ones(4, 6), 0.0)
    same = replay(weights, lambda: rules.get("random", prune_fraction=0.5, seed=9), [0.0, 0.5])
    assert torch.equal(same, weights * mask.mask)  # the run's own seeded mask


@pytest.mark.parametrize("rule, settings, random_how, init_how", [
    ("topk", {"keep": 0.5}, "magnitude", "magnitude"),
    ("dyn_topk", {"keep": 0.5}, "magnitude", "magnitude"),
    ("threshold", {}, "magnitude", "magnitude"),
    ("random", {"prune_fraction": 0.5}, "random_positions", "replay"),
    ("tril_damp", {"damping": 0.9}, "replay", "replay"),
    ("tril_prune", {}, "replay", "replay"),
])
def test_each_rule_prunes_its_nulls_its_own_way(rule, settings, random_how, init_how):
    pruning = null_pruning(lambda: rules.get(rule, **settings, seed=0), [0.0])
    assert (pruning.random, pruning.init) == (random_how, init_how)
    assert (null_pruning(None, []).random, null_pruning(None, []).init) == ("none", "none")


def measure(blocks):
    return exact_orderedness(blocks, 1)


def test_compare_reports_the_nulls_that_brute_force_gives():
    generator = torch.Generator().manual_seed(3)
    initial = torch.randn(6, 8, generator=generator)
    trained = initial.triu() * (torch.rand(6, 8, generator=generator) > 0.3)  # ordered in the identity order
    samples, seed = 30, 11
    pruning = null_pruning(lambda: rules.get("topk", keep=0.5), [0.0])
    record = compare(initial, trained, 6, measure, pruning, samples, seed)
    assert record["final"]["orderedness"] == 1.0
    start = brute_force_orderedness(initial[:, :6], 1).orderedness.item()
    assert record["start"]["orderedness"] == pytest.approx(start)
    count = int(trained.count_nonzero())

    shuffled = brute_force_orderedness(shuffled_entries(trained[:, :6].expand(samples, 6, 6), seed + 1), 1).orderedness
    null = record["nulls"]["shuffled"]
    assert null["mean"] == pytest.approx(shuffled.mean().item()) and null["std"] == pytest.approx(shuffled.std().item())
    assert null["delta"] == pytest.approx(1.0 - shuffled.mean().item())
    assert null["p"] == pytest.approx((1 + int((shuffled >= 1.0 - 1e-12).sum())) / (1 + samples))

    draws = torch.Generator().manual_seed(seed + 2)
    random_weights = keep_largest(torch.randn((samples, 6, 8), generator=draws), count)
    random = brute_force_orderedness(random_weights[:, :, :6], 1).orderedness
    assert record["nulls"]["random"]["mean"] == pytest.approx(random.mean().item())
    assert record["nulls"]["random"]["density"] == pytest.approx(count / 48)
    init = brute_force_orderedness(keep_largest(initial[None], count)[:, :, :6], 1).orderedness.item()
    assert record["nulls"]["init"]["mean"] == pytest.approx(init) and "p" not in record["nulls"]["init"]


def test_an_unpruned_trunk_compares_against_dense_nulls_and_its_own_start():
    initial = torch.randn(6, 8, generator=torch.Generator().manual_seed(4))
    trained = initial * 1.5
    record = compare(initial, trained, 6, measure, null_pruning(None, []), 10, 0)
    assert record["nulls"]["init"]["mean"] == pytest.approx(record["start"]["orderedness"])
    assert record["nulls"]["random"]["density"] == 1.0 and record["final"]["density"] == 1.0


def test_self_loops_only_are_ordered_and_counted_apart_and_an_empty_block_is_undefined():
    diagonal = torch.zeros(6, 8)
    diagonal[:, :6] = torch.diag(torch.arange(1.0, 7.0))
    record = compare(diagonal, diagonal, 6, measure, null_pruning(None, []), 5, 0)
    assert record["final"]["orderedness"] == 1.0 and record["final"]["self_loop_fraction"] == 1.0
    empty = torch.zeros(6, 8)
    empty[:, 6:] = 1.0  # only input weights survive: nothing to order
    record = compare(diagonal, empty, 6, measure, null_pruning(None, []), 5, 0)
    assert record["final"]["undefined"] is True and math.isnan(record["final"]["orderedness"])


def test_paired_test_is_the_wilcoxon_signed_rank_test():
    trained = [float(i) for i in range(1, 11)]
    summary = paired_test(trained, [0.0] * 10)
    assert summary["mean"] == 5.5 and summary["std"] == pytest.approx(math.sqrt(55 / 6))
    assert summary["p"] == pytest.approx(2 / 1024)  # exact: only the all-positive and all-negative signs
    assert paired_test([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])["p"] == 1.0
    assert math.isnan(paired_test([1.0], [0.0])["p"])
