"""branches.spam.calibration: accuracy, NLL, Brier and ECE against hand-computed cases and torchmetrics."""

from __future__ import annotations

import math

import pytest
import torch

from branches.spam.calibration import CalibrationSums, calibration_metrics
from foundations.errors import UserError


def logits_of(probabilities: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probabilities, dtype=torch.float64).log()


def test_a_hand_computed_case():
    # three examples, two classes; confidences 0.9 (right), 0.6 (wrong), 0.7 (right)
    p = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    y = torch.tensor([0, 1, 1])
    m = calibration_metrics(logits_of(p), y, bins=2)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.7)) / 3)
    brier = ((0.9 - 1) ** 2 + 0.1 ** 2) + (0.6 ** 2 + (0.4 - 1) ** 2) + (0.3 ** 2 + (0.7 - 1) ** 2)
    assert m["brier"] == pytest.approx(brier / 3)
    # two bins: [0, .5) empty, [.5, 1] holds all three: |(1 + 0 + 1) - (0.9 + 0.6 + 0.7)| / 3
    assert m["ece"] == pytest.approx(abs(2 - 2.2) / 3)
    # ten bins: 0.6 | 0.7 | 0.9 each alone: (|0 - .6| + |1 - .7| + |1 - .9|) / 3
    assert calibration_metrics(logits_of(p), y, bins=10)["ece"] == pytest.approx((0.6 + 0.3 + 0.1) / 3)


def test_both_branches_bin_the_ece_in_ten_as_the_authors():
    from branches.spam.online_pruning import OnlineHparams
    from branches.spam.sweep import SweepHparams

    # confidences 0.62 (right) and 0.68 (wrong): one bin of ten, [0.6, 0.7): |1 - 1.30| / 2 = 0.15;
    # fifteen bins split them at 2/3: (|1 - .62| + |0 - .68|) / 2 = 0.53
    p, y = [[0.62, 0.38], [0.32, 0.68]], torch.tensor([0, 0])
    for bins in (SweepHparams().ece_bins, OnlineHparams().ece_bins):
        assert calibration_metrics(logits_of(p), y, bins=bins)["ece"] == pytest.approx(0.15)
    assert calibration_metrics(logits_of(p), y, bins=15)["ece"] == pytest.approx(0.53)


def test_a_confidence_of_one_is_in_the_last_bin_and_a_perfect_model_scores_zero():
    logits = torch.tensor([[0.0, -1e4], [-1e4, 0.0]], dtype=torch.float64)  # softmax exactly one-hot
    m = calibration_metrics(logits, torch.tensor([0, 1]), bins=15)
    assert m == {"accuracy": 1.0, "nll": 0.0, "brier": 0.0, "ece": 0.0}


@pytest.mark.parametrize("bins", [10, 15])
def test_ece_matches_torchmetrics_and_batches_add_up(bins):
    torchmetrics = pytest.importorskip("torchmetrics.functional")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, 7, (500,), generator=g)
    expected = torchmetrics.calibration_error(logits.softmax(1), labels, task="multiclass", num_classes=7,
                                              n_bins=bins, norm="l1")
    sums = CalibrationSums(bins)
    for start in range(0, 500, 128):
        sums.add(logits[start:start + 128], labels[start:start + 128])
    batched = sums.metrics()
    assert batched["ece"] == pytest.approx(expected.item(), abs=1e-6)  # torchmetrics bins in float32
    whole = calibration_metrics(logits, labels, bins)
    assert batched == pytest.approx(whole, abs=1e-12)
    assert whole["nll"] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())


def test_zero_bins_is_a_user_error():
    with pytest.raises(UserError, match="ece_bins"):
        CalibrationSums(0)
