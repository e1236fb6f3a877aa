import pytest
import torch

from foundations.errors import UserError
from pruning import Mask, prune_units
from tests.pruning.test_nets import TinyCNN, TinyMLP


def mlp_with_rows(rows: list[list[float]]) -> TinyMLP:
    model = TinyMLP()
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor(rows))
    return model


# fc1 rows: L1 norms 4, 4.5, 1.2, 8, 2, 3.9 ; L2 norms 2, 4.5, 0.85, 4, 1, 2.83
ROWS = [[1, 1, 1, 1], [4.5, 0, 0, 0], [0.6, 0.6, 0, 0],
        [2, 2, 2, 2], [0.5, 0.5, 0.5, 0.5], [2.7, 0.6, 0.6, 0]]


def unit_alive(mask: Mask, name: str) -> list[bool]:
    return mask[name].flatten(1).any(dim=1).tolist()


def test_neurons_by_l1_norm_remove_whole_rows_with_the_smallest_norms():
    model = mlp_with_rows(ROWS)
    result = prune_units(model, Mask.ones_like(model), 0.5, "neurons", "l1", layers_to_ignore=["fc2.weight"])
    assert unit_alive(result, "fc1.weight") == [True, True, False, True, False, False]
    rows = result["fc1.weight"]
    assert all(row.all() or not row.any() for row in rows)  # whole units only
    assert result["fc2.weight"].all() and result["fc.weight"].all()  # ignored, and the output layer


def test_neurons_by_l2_norm_rank_differently_and_only_count_live_weights():
    model = mlp_with_rows(ROWS)
    result = prune_units(model, Mask.ones_like(model), 0.5, "neurons", "l2", layers_to_ignore=["fc2.weight"])
    assert unit_alive(result, "fc1.weight") == [False, True, False, True, False, True]
    mask = Mask.ones_like(model)
    partial = mask["fc1.weight"].clone()
    partial[1, 0] = False  # row 1 loses its only large weight: now the weakest live unit
    partial[2] = False  # row 2 is already dead: never counted, never revived
    mask = Mask({**dict(mask.items()), "fc1.weight": partial})
    # round(0.4 * 5 live units) = 2 go: row 1 (norm 0 now) and row 4
    again = prune_units(model, mask, 0.4, "neurons", "l2", layers_to_ignore=["fc2.weight"])
    assert unit_alive(again, "fc1.weight") == [True, False, False, True, False, True]
    assert torch.equal(again["fc1.weight"][0], partial[0])


def test_filters_are_whole_output_channels_and_each_layer_loses_its_share():
    model = TinyCNN()
    result = prune_units(model, Mask.ones_like(model), 0.5, "filters", "l2")
    assert sum(unit_alive(result, "conv1.weight")) == 2 and sum(unit_alive(result, "conv2.weight")) == 3
    for name in ("conv1.weight", "conv2.weight"):
        norms = torch.linalg.vector_norm(model.state_dict()[name].flatten(1), dim=1)
        kept = torch.tensor(unit_alive(result, name))
        assert norms[kept].min() > norms[~kept].max()
        assert all(f.all() or not f.any() for f in result[name])
    assert result["fc.weight"].all()  # linear layers are not filters


def test_random_units_are_seeded():
    model = TinyCNN()
    mask = Mask.ones_like(model)
    first = prune_units(model, mask, 0.5, "filters", "random", seed=1)
    assert first == prune_units(model, mask, 0.5, "filters", "random", seed=1)
    assert any(first != prune_units(model, mask, 0.5, "filters", "random", seed=s) for s in range(2, 6))
    assert sum(unit_alive(first, "conv2.weight")) == 3


def test_bad_structured_requests_are_user_errors():
    model = TinyMLP()
    mask = Mask.ones_like(model)
    with pytest.raises(UserError, match="found no layer"):
        prune_units(model, mask, 0.5, "filters")
    with pytest.raises(UserError, match="use neurons, filters"):
        prune_units(model, mask, 0.5, "channels")
    with pytest.raises(UserError, match="l1, l2, random"):
        prune_units(model, mask, 0.5, "neurons", "linf")
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        prune_units(model, mask, 1.0, "neurons")
