import pytest
import torch

from foundations.errors import UserError
from pruning import Mask, ScoringData, prune, prune_in_rounds
from pruning.scores.magnitude import magnitude_scores
from tests.pruning.test_nets import TinyCNN


def distinct_scores(mask: Mask, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(mask[n].shape, generator=g) for n in mask}


def test_l_rounds_of_point_two_leave_point_eight_to_the_l_of_considered_weights():
    model = TinyCNN()
    mask = Mask.ones_like(model)
    considered = ["conv2.weight", "fc.weight"]
    alive = sum(mask[n].numel() for n in considered)  # 216 + 18
    for level in range(1, 6):
        mask = prune(distinct_scores(mask, level), mask, 0.2, layers_to_ignore=["conv1.weight"])
        alive -= round(0.2 * alive)
        assert sum(int(mask[n].sum()) for n in considered) == alive
        assert abs(alive / 234 - 0.8 ** level) < 2 / 234 * level
        assert mask["conv1.weight"].all()  # ignored: untouched


def test_global_and_layerwise_scope_differ_on_hand_built_scores():
    mask = Mask({"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)})
    scores = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([10.0, 20.0, 30.0, 40.0])}
    glob = prune(scores, mask, 0.5, scope="global")
    assert glob["a"].tolist() == [False] * 4 and glob["b"].tolist() == [True] * 4
    layer = prune(scores, mask, 0.5, scope="layerwise")
    assert layer["a"].tolist() == layer["b"].tolist() == [False, False, True, True]


def test_prune_highest_removes_the_top_scores():
    mask = Mask({"a": torch.ones(2, 3, dtype=torch.bool)})
    scores = {"a": torch.tensor([[5.0, 1.0, 4.0], [2.0, 6.0, 3.0]])}
    assert prune(scores, mask, 0.5)["a"].tolist() == [[True, False, True], [False, True, False]]
    assert prune(scores, mask, 0.5, highest=True)["a"].tolist() == [[False, True, False], [True, False, True]]


def test_exactly_k_with_ties_broken_by_flat_index():
    mask = Mask({"a": torch.ones(3, dtype=torch.bool), "b": torch.ones(2, 2, dtype=torch.bool)})
    scores = {"a": torch.zeros(3), "b": torch.zeros(2, 2)}
    low = prune(scores, mask, 0.6)  # round(0.6 * 7) = 4: the first four in mask order
    assert low["a"].tolist() == [False, False, False] and low["b"].tolist() == [[False, True], [True, True]]
    high = prune(scores, mask, 0.6, highest=True)  # ties also go to the lower index
    assert high == low
    assert prune(scores, mask, 0.5).num_unpruned == 7 - round(0.5 * 7)


def test_pruned_weights_are_never_revived_and_fraction_counts_only_alive_ones():
    mask = Mask({"a": torch.tensor([False, False, True, True, True, True])})
    scores = {"a": torch.tensor([-9.0, 9.0, 1.0, 2.0, 3.0, 4.0])}  # dead entries score lowest and highest
    assert prune(scores, mask, 0.5)["a"].tolist() == [False, False, False, False, True, True]
    assert prune(scores, mask, 0.5, highest=True)["a"].tolist() == [False, False, True, True, False, False]


def test_nan_scores_are_refused():
    mask = Mask({"a": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="NaN"):
        prune({"a": torch.tensor([1.0, float("nan"), 2.0])}, mask, 0.3)


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1, float("nan")])
def test_fraction_outside_zero_one_is_a_user_error(fraction):
    mask = Mask({"a": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(UserError, match=r"prune_fraction=.*\[0, 1\)"):
        prune({"a": torch.zeros(3)}, mask, fraction)


def test_bad_scope_and_unknown_ignored_layer_are_user_errors():
    mask = Mask({"a": torch.ones(3, dtype=torch.bool), "b": torch.ones(3, dtype=torch.bool)})
    scores = {"a": torch.zeros(3), "b": torch.zeros(3)}
    with pytest.raises(UserError, match="valid names are: a, b"):
        prune(scores, mask, 0.2, layers_to_ignore=["c"])
    with pytest.raises(UserError, match="global, layerwise"):
        prune(scores, mask, 0.2, scope="local")


class RecordingScore:
    """Magnitude scores that remember the mask each round was scored under."""

    def __init__(self):
        self.masks = []

    def __call__(self, model, mask, data):
        self.masks.append(mask)
        return magnitude_scores(model, mask, data)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_rounds_remove_the_same_fraction_of_what_remains_each_round(scope):
    model, score, p, n = TinyCNN(), RecordingScore(), 0.75, 4
    result = prune_in_rounds(model, score, p, n, scope=scope, layers_to_ignore=["fc.weight"])
    per_round = 1 - (1 - p) ** (1 / n)
    considered = ["conv1.weight", "conv2.weight"]
    alive = [sum(int(m[k].sum()) for k in considered) for m in score.masks + [result]]
    assert len(score.masks) == n and alive[0] == 36 + 216
    for before, after in zip(alive, alive[1:]):
        assert abs((before - after) / before - per_round) < 0.02  # rounding only
    # the last round lands exactly where a single round would
    if scope == "global":
        assert alive[-1] == 252 - round(p * 252)
    else:
        assert [int(result[k].sum()) for k in considered] == [36 - round(p * 36), 216 - round(p * 216)]
    assert result["fc.weight"].all()
    for earlier, later in zip(score.masks, score.masks[1:] + [result]):  # rescored on the masked net
        assert all(not (later[k] & ~earlier[k]).any() for k in later)


def test_rounds_reach_the_target_even_where_one_round_would_remove_nothing():
    model = TinyCNN()
    result = prune_in_rounds(model, "magnitude", 0.5, 40, scope="layerwise")
    assert int(result["fc.weight"].sum()) == 18 - round(0.5 * 18)  # 18 weights, 1.7% per round


def test_one_round_of_magnitude_equals_prune_and_model_is_untouched():
    model = TinyCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = Mask.ones_like(model)
    expected = prune(magnitude_scores(model, mask), mask, 0.3)
    assert prune_in_rounds(model, "magnitude", 0.3, data=ScoringData()) == expected
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(UserError, match="prune_iterations"):
        prune_in_rounds(model, "magnitude", 0.3, 0)
    with pytest.raises(UserError, match="unknown pruning strategy"):
        prune_in_rounds(model, "biggest", 0.3)

