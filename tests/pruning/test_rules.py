"""Per-step pruning rules against hand-computed steps, their schedules, state and errors."""

import io
import math

import pytest
import torch

from foundations.errors import UserError
from pruning import rules
from tests.models.test_families import assert_registry_convention


def hand_matrix() -> torch.Tensor:
    """3x5, magnitudes 1..15 all distinct, mixed signs: [[1, -2, 3, -4, 5], [-6, 7, ...], ...]."""
    values = torch.arange(1, 16, dtype=torch.float32)
    return (values * torch.tensor([1.0, -1.0]).repeat(8)[:15]).view(3, 5)


def kept_magnitudes(weight: torch.Tensor) -> list[int]:
    return sorted(int(v) for v in weight.abs().flatten() if v != 0)


# ---- the registry --------------------------------------------------------------------------------

def test_registry_finds_every_rule_and_marks_the_constraints():
    assert rules.names() == ["dyn_topk", "dyn_tril_damp", "random", "threshold", "topk", "tril_damp", "tril_prune"]
    assert rules.constraint_names() == ["dyn_tril_damp", "tril_damp", "tril_prune"]
    assert not rules.get("topk", keep=0.5).constraint and rules.get("tril_prune").constraint


def test_every_rule_follows_the_registry_convention():
    def is_rule(rule):
        return isinstance(rule, type) and issubclass(rule, rules.Rule)
    names = assert_registry_convention("pruning.rules", "STEP_RULES", is_rule, listing="module.names()")
    assert names == rules.names() == list(rules.RULES)
    assert all(rules.RULES[name] is rules.STEP_RULES.get(name) for name in names)


@pytest.mark.parametrize("call, message", [
    (lambda: rules.get("magnitude"), "use one of dyn_topk, dyn_tril_damp, random, threshold, topk"),
    (lambda: rules.get("topk"), "needs keep"),
    (lambda: rules.get("random", prune_fraction=0.5), "needs seed"),
    (lambda: rules.get("topk", keep=0.0), r"keep=0.0 is out of range.*\(0, 1\]"),
    (lambda: rules.get("dyn_topk", keep=1.5), "out of range"),
    (lambda: rules.get("topk", keep=float("nan")), "out of range"),
    (lambda: rules.get("random", prune_fraction=1.0, seed=0), r"\[0, 1\)"),
    (lambda: rules.get("tril_damp", damping=1.1), r"\[0, 1\]"),
    (lambda: rules.get("threshold", threshold=-1.0), ">= 0"),
    (lambda: rules.get("topk", keep=0.5, damping=0.1), "takes no damping: it takes keep"),
    (lambda: rules.get("tril_prune", keep=0.5), "takes no keep: it takes no settings"),
])
def test_bad_settings_are_user_errors(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_seed_is_accepted_by_every_rule():
    for name in ("topk", "tril_prune"):
        settings = {"keep": 0.5} if name == "topk" else {}
        assert rules.get(name, seed=3, **settings) is not None


# ---- one step by hand ------------------------------------------------------------------------------

@pytest.mark.parametrize("keep, count", [(0.3, 4), (0.5, 7), (0.29, 4), (1.0, 15), (0.05, 0)])
def test_topk_keeps_the_floor_of_keep_times_numel_largest(keep, count):
    assert count == math.floor(keep * 15)
    weight = hand_matrix()
    rules.get("topk", keep=keep).apply(weight, progress=0.0)
    assert kept_magnitudes(weight) == list(range(16 - count, 16))
    untouched = hand_matrix()
    assert torch.equal(weight[weight != 0], untouched[weight != 0])


def test_topk_lets_pruned_weights_grow_back():
    weight = hand_matrix()
    rule = rules.get("topk", keep=0.2)  # 3 kept: 13, 14, 15
    rule.apply(weight, 0.0)
    weight[0, 0] = 100.0  # a pruned weight the optimizer pushed up
    rule.apply(weight, 0.1)
    assert kept_magnitudes(weight) == [14, 15, 100]


@pytest.mark.parametrize("progress, ramp", [(0.0, 0.0), (1 / 3, 1 / 16), (0.5, 1 / 4), (1.0, 1.0)])
def test_dyn_schedules_at_known_progress(progress, ramp):
    # sin(pi/6) = 1/2 and sin(pi/4) = 1/sqrt(2): sin^4 = 1/16 and 1/4
    assert rules.sin4(progress) == pytest.approx(ramp, abs=1e-15)
    topk = rules.get("dyn_topk", keep=0.2)
    assert topk.kept_fraction(progress) == pytest.approx(1 - 0.8 * ramp)
    assert rules.get("dyn_tril_damp", damping=0.6).damping_at(progress) == pytest.approx(0.6 * ramp)
    weight = hand_matrix()
    topk.apply(weight, progress)
    assert len(kept_magnitudes(weight)) == math.floor((1 - 0.8 * ramp) * 15)  # 15, 14, 12, 3


def test_dyn_rules_refuse_progress_outside_training():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rules.get("dyn_topk", keep=0.5).apply(hand_matrix(), 1.5)


def test_threshold_given():
    weight = hand_matrix()
    rules.get("threshold", threshold=3.5).apply(weight, 0.0)
    assert kept_magnitudes(weight) == list(range(4, 16))


def test_threshold_auto_is_the_first_steps_kth_value_and_stays_frozen():
    weight = hand_matrix()
    rule = rules.get("threshold")
    rule.apply(weight, 0.0)
    # n = 15, n // 2 = 7: tau = 7, the 7th smallest magnitude (1-based); |w| < 7 goes: 1..6
    assert rule.state_dict()["threshold"].item() == 7.0
    assert kept_magnitudes(weight) == list(range(7, 16))
    weight = hand_matrix() * 2  # magnitudes 2..30: a fresh median would be 14
    rule.apply(weight, 0.5)
    assert rule.state_dict()["threshold"].item() == 7.0
    assert kept_magnitudes(weight) == list(range(8, 31, 2))


def test_threshold_on_one_weight_uses_the_first_value():
    weight = torch.tensor([2.0])
    rule = rules.get("threshold")
    rule.apply(weight, 0.0)
    assert weight.item() == 2.0 and rule.state_dict()["threshold"].item() == 2.0


def test_random_mask_is_seeded_drawn_once_and_prunes_the_fraction():
    shape = (200, 300)
    rule = rules.get("random", prune_fraction=0.3, seed=11)
    weight = torch.ones(shape)
    rule.apply(weight, 0.0)
    expected = torch.rand(shape, generator=torch.Generator().manual_seed(11)) >= 0.3
    assert torch.equal(weight != 0, expected)
    assert abs((weight == 0).float().mean().item() - 0.3) < 0.01  # the fraction pruned, not kept
    weight = torch.full(shape, 5.0)
    rule.apply(weight, 0.9)  # the same mask at a later step
    assert torch.equal(weight != 0, expected)
    again = torch.ones(shape)
    rules.get("random", prune_fraction=0.3, seed=11).apply(again, 0.0)
    other = torch.ones(shape)
    rules.get("random", prune_fraction=0.3, seed=12).apply(other, 0.0)
    assert torch.equal(again, torch.ones(shape) * expected) and not torch.equal(other, again)


def test_random_refuses_a_second_weight_shape():
    rule = rules.get("random", prune_fraction=0.5, seed=0)
    rule.apply(torch.ones(3, 5), 0.0)
    with pytest.raises(UserError, match="one rule per weight"):
        rule.apply(torch.ones(5, 3), 0.0)


def test_tril_damp_and_tril_prune_on_a_hand_matrix():
    # [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]: strictly below the diagonal are
    # 6 (1, 0), 11 (2, 0) and 12 (2, 1).
    weight = torch.arange(1, 16, dtype=torch.float32).view(3, 5)
    rules.get("tril_damp", damping=0.5).apply(weight, 0.0)
    assert weight.tolist() == [[1, 2, 3, 4, 5], [3, 7, 8, 9, 10], [5.5, 6, 13, 14, 15]]
    weight = torch.arange(1, 16, dtype=torch.float32).view(3, 5)
    rules.get("dyn_tril_damp", damping=1.0).apply(weight, 0.5)  # damping 1 * sin^4(pi/4) = 1/4
    assert weight.tolist() == [[1, 2, 3, 4, 5], [4.5, 7, 8, 9, 10], [8.25, 9, 13, 14, 15]]
    weight = torch.arange(1, 16, dtype=torch.float32).view(3, 5)
    rules.get("tril_prune").apply(weight, 0.0)
    assert weight.tolist() == [[1, 2, 3, 4, 5], [0, 7, 8, 9, 10], [0, 0, 13, 14, 15]]


@pytest.mark.parametrize("name", ["tril_damp", "tril_prune"])
def test_tril_rules_need_a_matrix(name):
    rule = rules.get(name, **({"damping": 0.5} if name == "tril_damp" else {}))
    with pytest.raises(UserError, match="2-D"):
        rule.apply(torch.ones(4), 0.0)


def test_rules_work_on_parameters_that_require_grad():
    weight = torch.nn.Parameter(hand_matrix())
    for rule in (rules.get("topk", keep=0.5), rules.get("tril_damp", damping=0.5), rules.get("threshold")):
        rule.apply(weight, 0.5)
    assert weight.requires_grad and weight.grad_fn is None


# ---- state for a bitwise resume --------------------------------------------------------------------

SETTINGS = {"dyn_topk": {"keep": 0.4}, "dyn_tril_damp": {"damping": 0.3},
            "random": {"prune_fraction": 0.5, "seed": 4}, "threshold": {}, "topk": {"keep": 0.4},
            "tril_damp": {"damping": 0.3}, "tril_prune": {}}


@pytest.mark.parametrize("name", rules.names())
def test_state_dict_round_trip_reproduces_the_next_step_bitwise(name):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 9, generator=generator)
    rule = rules.get(name, **SETTINGS[name])
    for step in range(3):
        weight += 0.1 * torch.randn(6, 9, generator=generator)  # an optimizer step
        rule.apply(weight, step / 10)
    buffer = io.BytesIO()
    torch.save(rule.state_dict(), buffer)
    buffer.seek(0)
    resumed = rules.get(name, **SETTINGS[name])
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    update = 0.1 * torch.randn(6, 9, generator=generator)
    continued, restarted = weight + update, weight + update
    rule.apply(continued, 0.3)
    resumed.apply(restarted, 0.3)
    assert torch.equal(continued, restarted)
    assert all(isinstance(value, torch.Tensor) for value in rule.state_dict().values())


def test_a_fresh_threshold_rule_would_not_resume_the_same():
    weight = hand_matrix()
    rule = rules.get("threshold")
    rule.apply(weight, 0.0)
    weight *= 3  # an optimizer step
    fresh = rules.get("threshold")
    fresh.apply(weight.clone(), 0.1)  # freezes tau anew: six zeros, then 21, 24, ...
    assert fresh.state_dict()["threshold"].item() == 21.0 and rule.state_dict()["threshold"].item() == 7.0


def test_foreign_state_is_refused():
    with pytest.raises(UserError, match="unknown entries mask"):
        rules.get("threshold").load_state_dict({"mask": torch.ones(2, dtype=torch.bool)})
