"""From a recording to masks (branches/chaos/causal_pruning.py) on hand-built series, against
statsmodels: p-values, the weights it refuses to test (kept or pruned as asked), the
Benjamini-Hochberg adjustment over the testable weights only, and the controls' counts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import InfeasibleTestError
from statsmodels.tsa.stattools import grangercausalitytests

from branches.chaos.causal_pruning import (
    granger_causality,
    magnitude_control,
    mask_pruning,
    random_control,
    usable_maxlag,
)
from branches.chaos.recorder import Recording
from pruning.mask import Mask

N, MAXLAG = 30, 3


def recording() -> Recording:
    """Six weights: noise, a constant (untestable), the risk's own past (causal), and noise."""
    generator = torch.Generator().manual_seed(0)
    risk = torch.rand(N, generator=generator, dtype=torch.float64)
    columns = [torch.rand(N, generator=generator, dtype=torch.float64) for _ in range(6)]
    columns[1] = torch.zeros(N, dtype=torch.float64)
    columns[2] = torch.cat([risk[1:], risk[-1:]]) + 0.01 * columns[2]  # x_t = y_{t+1}: x leads y
    exponents = torch.stack(columns, dim=1)
    ends = torch.arange(1, N + 1) * 10
    return Recording(exponents, exponents == 0, risk, ends, ["a", "b"], [[2, 2], [2]])


def statsmodels_min_p(x: np.ndarray, y: np.ndarray) -> float | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = grangercausalitytests(np.column_stack([y, x]), MAXLAG)
        except InfeasibleTestError:
            return None
    return min(result[lag][0]["ssr_chi2test"][1] for lag in range(1, MAXLAG + 1))


@pytest.mark.parametrize("on_infeasible", ["keep", "prune"])
def test_min_p_infeasible_weights_and_the_mask_rule(on_infeasible):
    rec = recording()
    test = granger_causality(rec, maxlag=MAXLAG, test="ssr_chi2test", alpha=0.05, fdr="none",
                             on_infeasible=on_infeasible)
    for w in range(6):
        expected = statsmodels_min_p(rec.exponents[:, w].numpy(), rec.risk.numpy())
        assert bool(test.infeasible[w]) == (expected is None)
        if expected is not None:
            assert test.min_p[w].item() == pytest.approx(expected, rel=1e-8)
            assert bool(test.pruned[w]) == (expected >= 0.05)
    assert test.infeasible.tolist() == [False, True, False, False, False, False]
    assert bool(test.pruned[1]) == (on_infeasible == "prune")
    assert not test.pruned[2] and test.min_p[2] < 1e-6  # the causal weight is kept


def test_benjamini_hochberg_adjusts_over_the_testable_weights_only():
    rec = recording()
    plain = granger_causality(rec, maxlag=MAXLAG, test="ssr_chi2test", alpha=0.05, fdr="none", on_infeasible="keep")
    bh = granger_causality(rec, maxlag=MAXLAG, test="ssr_chi2test", alpha=0.05, fdr="bh", on_infeasible="keep")
    feasible = ~plain.infeasible
    expected = multipletests(plain.min_p[feasible].numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(bh.adjusted[feasible].numpy(), expected, rtol=1e-12)
    assert torch.isnan(bh.adjusted[~feasible]).all()
    assert torch.equal(bh.pruned[feasible], bh.adjusted[feasible] >= 0.05) and not bh.pruned[1]


def test_the_lags_are_capped_at_what_the_windows_allow():
    assert usable_maxlag(14, 52) == 14 and usable_maxlag(14, 17) == 5 and usable_maxlag(2, 5) == 1


def test_controls_keep_the_counts_and_magnitude_ranks_by_hand():
    template = Mask({"a": torch.ones(2, 3, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool),
                     "c": torch.ones(3, dtype=torch.bool)})
    pruned = torch.tensor([1, 0, 1, 0, 0, 0, 1, 1, 0, 0], dtype=torch.bool)  # a (6 entries), then b (4)
    mask = mask_pruning(template, ["a", "b"], pruned)
    assert mask["a"].reshape(-1).tolist() == [False, True, False, True, True, True]
    assert mask["b"].tolist() == [False, False, True, True] and mask["c"].all()
    shuffled = random_control(mask, ["a", "b"], seed=3)
    assert [int(shuffled[n].sum()) for n in "abc"] == [4, 2, 3]
    weights = {"a": torch.tensor([[0.5, -0.1, 0.3], [0.2, -0.9, 0.05]]), "b": torch.tensor([0.01, 1.0, -0.02, 0.4]),
               "c": torch.zeros(3)}
    layerwise = magnitude_control(mask, weights, ["a", "b"], "layerwise")
    assert layerwise["a"].reshape(-1).tolist() == [True, False, True, True, True, False]  # -0.1 and 0.05 go
    assert layerwise["b"].tolist() == [False, True, False, True] and layerwise["c"].all()
    # Globally the 4 smallest of all ten: 0.01, -0.02, 0.05, -0.1.
    global_ = magnitude_control(mask, weights, ["a", "b"], "global")
    assert global_["a"].reshape(-1).tolist() == [True, False, True, True, True, False]
    assert global_["b"].tolist() == [False, True, False, True]
    weights["b"] = torch.tensor([0.01, 1.0, 0.6, 0.4])  # now 0.01, 0.05, -0.1, 0.2: three of them in a
    global_ = magnitude_control(mask, weights, ["a", "b"], "global")
    assert global_["a"].reshape(-1).tolist() == [True, False, True, False, True, False]
    assert global_["b"].tolist() == [False, True, True, True] and global_["c"].all()
