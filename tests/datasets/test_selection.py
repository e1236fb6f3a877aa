"""Seeded subsets, random labels, per-class draws and seed derivation, checked on hand-made labels."""

import pytest
import torch

from datasets.augment import draw_pad_crop_flip
from datasets.seeds import epoch_order
from datasets.selection import per_class_indices, randomize_labels, subsample_indices
from foundations.errors import UserError
from foundations.seeds import digest_seed


def test_derived_seeds_are_stable_and_distinct():
    assert digest_seed(1, "order", 0) == digest_seed(1, "order", 0)
    seeds = {digest_seed(s, tag, e) for s in range(3) for tag in ("order", "augment") for e in range(3)}
    assert len(seeds) == 18 and all(0 <= s < 2**63 for s in seeds)
    assert epoch_order(10, None, 0) is None
    assert torch.equal(epoch_order(10, 4, 2), epoch_order(10, 4, 2))


@pytest.mark.parametrize("n,fraction,kept", [(10, 0.5, 5), (7, 0.3, 2), (3, 0.01, 1), (8, 1.0, 8)])
def test_subsample_counts(n, fraction, kept):
    chosen = subsample_indices(n, fraction, seed=0)
    assert chosen.numel() == kept and torch.equal(chosen, chosen.unique())  # sorted, distinct
    assert 0 <= chosen.min() and chosen.max() < n


def test_subsample_rejects_fractions_outside_zero_one():
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(UserError, match="subsample_fraction"):
            subsample_indices(10, bad, seed=0)


def test_random_labels_change_exactly_the_chosen_count():
    labels = torch.full((1000,), -1)  # no random class can equal -1, so every redraw shows
    new = randomize_labels(labels, 0.3, num_classes=7, seed=2)
    changed = new != -1
    assert int(changed.sum()) == 300
    assert set(new[changed].tolist()) == set(range(7))  # 300 uniform draws hit all 7 classes
    assert torch.equal(labels, torch.full((1000,), -1))  # the input is not modified
    assert torch.equal(new, randomize_labels(labels, 0.3, num_classes=7, seed=2))
    assert not torch.equal(new, randomize_labels(labels, 0.3, num_classes=7, seed=3))
    assert torch.equal(randomize_labels(labels, 0.0, num_classes=7, seed=2), labels)  # zero means none
    with pytest.raises(UserError, match="random_labels_fraction"):
        randomize_labels(labels, 1.5, num_classes=7, seed=2)


def test_per_class_indices_by_hand():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2])
    chosen = per_class_indices(labels, 2, num_classes=3, seed=0)
    assert chosen.numel() == 6 and chosen.unique().numel() == 6
    assert labels[chosen].tolist() == [0, 0, 1, 1, 2, 2]
    assert set(per_class_indices(labels, 2, 3, seed=0)[2:4].tolist()) == {2, 5}  # class 1 has exactly two
    with pytest.raises(UserError):
        per_class_indices(labels, 3, num_classes=3, seed=0)  # class 1 has only two


def test_augmentation_parameters_cover_the_whole_range():
    params = draw_pad_crop_flip(2000, 4, 0, "augment", 0)
    assert params.shape == (2000, 3)
    assert set(params[:, 0].tolist()) == set(range(9)) and set(params[:, 1].tolist()) == set(range(9))
    assert set(params[:, 2].tolist()) == {0, 1} and 0.45 < params[:, 2].float().mean() < 0.55
    assert torch.equal(params, draw_pad_crop_flip(2000, 4, 0, "augment", 0))
