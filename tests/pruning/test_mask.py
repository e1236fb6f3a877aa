import json

import pytest
import torch

from foundations.errors import UserError
from pruning import Mask
from tests.pruning.test_nets import TinyCNN, TinyMLP


def hand_mask() -> Mask:
    return Mask({"a.weight": torch.tensor([[True, False, True], [False, False, True]]),
                 "b.weight": torch.tensor([True, True, False, False])})


def test_ones_like_covers_the_prunable_weights_densely():
    model = TinyCNN()
    mask = Mask.ones_like(model)
    assert mask.keys() == model.prunable_layer_names
    assert all(mask[n].shape == model.state_dict()[n].shape and mask[n].all() for n in mask)
    assert mask.num_total == 4 * 1 * 9 + 6 * 4 * 9 + 3 * 6
    assert mask.density == 1.0


def test_counts_match_hand_count():
    mask = hand_mask()
    assert mask.layer_counts() == {"a.weight": {"total": 6, "unpruned": 3},
                                   "b.weight": {"total": 4, "unpruned": 2}}
    assert (mask.num_total, mask.num_unpruned, mask.density) == (10, 5, 0.5)


def test_save_load_round_trip_is_a_plain_dict_of_bool_tensors(tmp_path):
    mask = hand_mask()
    mask.save(tmp_path)
    raw = torch.load(tmp_path / "mask.pt", weights_only=True)
    assert type(raw) is dict and list(raw) == ["a.weight", "b.weight"]
    assert all(t.dtype == torch.bool and torch.equal(t, mask[n]) for n, t in raw.items())
    assert Mask.exists(tmp_path) and not Mask.exists(tmp_path / "elsewhere")
    assert Mask.load(tmp_path) == mask
    report = json.loads((tmp_path / "sparsity.json").read_text())
    assert report == {"total": 10, "unpruned": 5, "density": 0.5, "layers": mask.layer_counts()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.pt", "sparsity.json"]  # no temporaries left


def test_non_bool_entries_are_refused():
    with pytest.raises(ValueError, match="bool tensor"):
        Mask({"w": torch.ones(3)})


def random_mask(seed: int = 0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(s, generator=g) < 0.3 for n, s in
                 {"fc1.weight": (6, 4), "fc2.weight": (5, 6), "fc.weight": (3, 5)}.items()})


def test_layerwise_shuffle_keeps_every_layer_count_and_moves_weights():
    mask = random_mask()
    shuffled = mask.shuffled("layerwise", seed=3)
    assert shuffled.layer_counts() == mask.layer_counts()
    assert shuffled != mask
    assert shuffled == mask.shuffled("layerwise", seed=3)
    assert shuffled != mask.shuffled("layerwise", seed=4)


def test_global_shuffle_keeps_the_total_but_not_layer_counts():
    mask = Mask({"a": torch.zeros(40, dtype=torch.bool), "b": torch.ones(40, dtype=torch.bool)})
    shuffled = mask.shuffled("global", seed=0)
    counts = shuffled.layer_counts()
    assert shuffled.num_unpruned == 40
    assert 0 < counts["a"]["unpruned"] < 40 and 0 < counts["b"]["unpruned"] < 40


def test_shuffle_leaves_ignored_layers_alone():
    mask = Mask({"a": torch.zeros(40, dtype=torch.bool), "b": torch.ones(40, dtype=torch.bool),
                 "c": torch.arange(40) % 2 == 0})
    shuffled = mask.shuffled("global", seed=0, layers_to_ignore=["c"])
    assert torch.equal(shuffled["c"], mask["c"])
    assert shuffled["a"].sum() + shuffled["b"].sum() == 40
    with pytest.raises(UserError, match="valid names are: a, b, c"):
        mask.shuffled("layerwise", seed=0, layers_to_ignore=["d"])
    with pytest.raises(UserError, match="layerwise, global"):
        mask.shuffled("everywhere", seed=0)


def test_to_and_equality():
    mask = Mask.ones_like(TinyMLP())
    assert mask.to("cpu") == mask
    assert mask != hand_mask()
