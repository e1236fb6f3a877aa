"""The LEGCNet authors' protocol, knob by knob, each against a hand-computed case: their accuracy
(exact match of rounded sigmoid outputs), the lag rule when the windows are too few, p-values
rounded to 4 decimals, macro precision and recall (scikit-learn), their iris split and the fixed
data order, and the recipes that set all of it."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics
import torch

from branches.chaos.accuracy import accuracy_of, argmax_correct, correct_rule, exact_match_correct, macro_scores
from branches.chaos.causal_pruning import granger_causality, lags_tested, round_pvalues
from branches.chaos.recorder import Recording
from datasets.seeds import epoch_order
from datasets.table_format import TensorTable, shuffled_split
from foundations.bundles import FIXED_ORDER, TrainingHparams
from foundations.errors import UserError
from models import recipes


class Rows:
    """A loader of fixed logits: `model` is the identity."""

    def __init__(self, logits: torch.Tensor, labels: torch.Tensor):
        self.logits, self.labels = logits, labels

    def batches(self, epoch: int):
        yield self.logits[:2], self.labels[:2]
        yield self.logits[2:], self.labels[2:]


LOGITS = torch.tensor([[2.0, -1.0, -3.0],   # rounds to [1, 0, 0]: right both ways
                       [1.0, 0.5, -2.0],    # [1, 1, 0]: arg max right, not an exact match
                       [-1.0, -0.5, -2.0],  # [0, 0, 0]: arg max 1 right, no output above 1/2
                       [-2.0, -1.0, 0.0],   # sigmoid(0) = 0.5 rounds up: [0, 0, 1], right
                       [0.3, -1.0, -1.0]])  # [1, 0, 0] but the label is 2: wrong both ways
LABELS = torch.tensor([0, 0, 1, 2, 2])


def test_the_authors_accuracy_is_an_exact_match_of_rounded_sigmoid_outputs():
    assert exact_match_correct(LOGITS, LABELS).tolist() == [True, False, False, True, False]
    assert argmax_correct(LOGITS, LABELS).tolist() == [True, True, True, True, False]
    identity = torch.nn.Identity()
    assert accuracy_of(identity, Rows(LOGITS, LABELS), exact_match_correct) == pytest.approx(2 / 5)
    assert accuracy_of(identity, Rows(LOGITS, LABELS), argmax_correct) == pytest.approx(4 / 5)
    assert correct_rule("authors", "sigmoid_mse") is exact_match_correct
    assert correct_rule("authors", "softmax_mse") is argmax_correct  # their MNIST code took the arg max
    assert correct_rule("argmax", "sigmoid_mse") is argmax_correct


def test_macro_precision_recall_and_f1_are_scikit_learns_of_the_arg_max():
    # Predictions 0, 0, 1, 2, 0 against 0, 0, 1, 2, 2: precision (2/3 + 1 + 1)/3, recall (1 + 1 + 1/2)/3.
    scores = macro_scores(torch.nn.Identity(), Rows(LOGITS, LABELS))
    assert scores["precision"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert scores["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    expected = sklearn.metrics.precision_recall_fscore_support([0, 0, 1, 2, 2], [0, 0, 1, 2, 0], average="macro")
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(expected[:3])


def test_the_lag_rule_by_hand():
    # statsmodels needs n > 3 maxlag + 1 points: 14 lags need 44 windows.
    assert lags_tested(14, 44, "authors") == 14 and lags_tested(14, 43, "authors") == 0
    assert lags_tested(14, 43, "cap") == 13 and lags_tested(14, 25, "cap") == 7 and lags_tested(3, 44, "cap") == 3


def recording(n: int) -> Recording:
    generator = torch.Generator().manual_seed(1)
    risk = torch.rand(n, generator=generator, dtype=torch.float64)
    exponents = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    return Recording(exponents, exponents == 0, risk, torch.arange(n), ["w"], [[4]])


def test_too_few_windows_keep_every_weight_under_the_authors_rule_and_are_tested_under_ours():
    rec = recording(25)  # the authors' MNIST-PT: 25 windows, maxlag 14
    theirs = granger_causality(rec, maxlag=14, test="ssr_chi2test", alpha=0.05, fdr="none", on_infeasible="keep",
                               lag_rule="authors", pvalue_decimals=4)
    assert theirs.maxlag == 0 and not theirs.pruned.any() and (theirs.min_p == 0).all()
    ours = granger_causality(rec, maxlag=14, test="ssr_chi2test", alpha=0.05, fdr="none", on_infeasible="keep")
    assert ours.maxlag == 7 and (ours.min_p > 0).all()


def test_pvalues_are_rounded_to_4_decimals_before_the_minimum_and_alpha():
    assert round_pvalues(torch.tensor([0.04996, 0.04994, 0.123456], dtype=torch.float64), 4).tolist() == [
        0.05, 0.0499, 0.1235]
    assert torch.equal(round_pvalues(torch.tensor([0.04996]), -1), torch.tensor([0.04996]))
    rec = recording(30)
    exact = granger_causality(rec, maxlag=3, test="ssr_chi2test", alpha=0.05, fdr="none", on_infeasible="keep")
    rounded = granger_causality(rec, maxlag=3, test="ssr_chi2test", alpha=0.05, fdr="none", on_infeasible="keep",
                                pvalue_decimals=4)
    assert torch.equal(rounded.min_p, exact.min_p.round(decimals=4))
    assert torch.equal(rounded.pruned, rounded.min_p >= 0.05)  # 0.04996 is 0.05: pruned


def test_the_authors_iris_split_is_numpys_seed_42_shuffle():
    data = np.arange(150)
    np.random.seed(42)
    np.random.shuffle(data)  # Helper.py iris(): np.random.seed(42); np.random.shuffle(data); [:120] / [120:]
    train, test = shuffled_split(150, 0.2, 42)
    assert train.tolist() == data[:120].tolist() and test.tolist() == data[120:].tolist()

    def rows():
        x = torch.arange(150 * 2, dtype=torch.float64).reshape(150, 2) ** 1.5
        return x, torch.arange(150) % 3

    table = TensorTable(rows, test_fraction=0.2, split="shuffled", split_seed=42, standardize=True,
                        test_statistics="own")
    x_train, y_train = table.read_split("t", True, root=None)
    x_test, _ = table.read_split("t", False, root=None)
    assert y_train.tolist() == (torch.from_numpy(data[:120]) % 3).tolist()
    torch.testing.assert_close(x_test.mean(0), torch.zeros(2), atol=1e-5, rtol=0)  # its own statistics
    torch.testing.assert_close(x_test.std(0, unbiased=False), torch.ones(2), atol=1e-5, rtol=0)
    ours = TensorTable(rows, test_fraction=0.2, split="shuffled", split_seed=42, standardize=True)
    assert ours.read_split("t", False, root=None)[0].mean(0).abs().max() > 0.01  # the training rows' statistics
    with pytest.raises(ValueError):
        TensorTable(rows, split="random")


def test_the_fixed_order_is_one_shuffle_every_epoch():
    first = epoch_order(120, FIXED_ORDER, 0)
    assert torch.equal(first, epoch_order(120, FIXED_ORDER, 7))
    assert first.tolist() == np.random.RandomState(42).permutation(120).tolist()
    assert not torch.equal(epoch_order(120, 5, 0), epoch_order(120, 5, 1))
    fixed = TrainingHparams(optimizer_name="sgd", lr=0.1, training_steps="1ep", data_order="fixed")
    assert fixed.data_order_seed == FIXED_ORDER
    with pytest.raises(UserError, match="drop one"):
        TrainingHparams(optimizer_name="sgd", lr=0.1, training_steps="1ep", data_order="fixed", data_order_seed=3)


def test_the_recipes_are_the_authors_setup():
    iris = recipes.saturating_mlp("iris_sigmoid_6", "iris")
    assert iris["model"]["model_init"] == "normal" and iris["model"]["bias_init"] == "normal"
    assert iris["training"]["data_order"] == "fixed" and iris["dataset"]["table_split"] == "legcnet"
    assert iris["chaos"] == {"window": 160, "risk_split": "test", "accuracy": "authors", "change_points": "ischange",
                             "lag_rule": "authors", "pvalue_decimals": 4, "stop_at_train_accuracy": 0.95}
    fashion = recipes.saturating_mlp("fashionmnist_sigmoid_50_30", "fashionmnist")
    assert fashion["dataset"]["input_normalization"] == "raw" and fashion["model"]["model_init"] == "pytorch"
    assert fashion["chaos"]["analysis_layers"] == "fc_layers.1.weight,fc.weight"
    assert fashion["chaos"]["stop_at_train_accuracy"] == 0.92
    assert recipes.saturating_mlp("xor_sigmoid_2", "xor") == {
        "dataset": {"dataset_name": "xor", "batch_size": 4},
        "model": {"model_name": "xor_sigmoid_2", "model_init": "kaiming_normal", "batchnorm_init": "uniform"},
        "training": {"optimizer_name": "adam", "lr": 0.01, "training_steps": "10000ep", "loss": "sigmoid_mse"},
        "pruning": {}}


def test_a_window_with_a_change_point_gets_exponent_zero_under_the_guard():
    """Two weights over one window of 8 steps: one steps by 3 halfway (ischange finds it), one
    wanders by 1e-3 (no change). With the guard the first window's exponent is 0 and degenerate."""
    from types import SimpleNamespace

    from branches.chaos.chaos_causality import ChaosHparams
    from branches.chaos.recorder import TrajectoryRecorder

    class Log:
        def write(self, *args):
            pass

    def run(guard: bool) -> Recording:
        weight = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        model = torch.nn.Module()
        model.register_parameter("w", weight)
        model.forward = lambda x: torch.zeros(x.shape[0], 3)
        recorder = TrajectoryRecorder(["w"], steps=8, window=8, overlap=0.0, record="weights",
                                      risk_loader=Rows(LOGITS, LABELS), loss=None, correct=argmax_correct,
                                      lyapunov_options=ChaosHparams(decimals=9).lyapunov_options(),
                                      change_point_guard=guard)
        state = SimpleNamespace(model=model, iteration=0, step="0ep", log=Log())
        recorder.on_start(state)
        wander = [0.0, 0.7, 0.2, 0.9, 0.4, 0.1, 0.8, 0.3]
        for t in range(8):
            with torch.no_grad():
                weight.copy_(torch.tensor([0.1 * wander[t] + (0.0 if t < 4 else 3.0), 1e-3 * wander[t]],
                                          dtype=torch.float64))
            state.iteration = t + 1
            recorder.after_optimizer_step(state)
        return recorder.result()

    plain, guarded = run(False), run(True)
    assert guarded.exponents[0, 0] == 0 and guarded.degenerate[0, 0] and not plain.degenerate[0, 0]
    assert guarded.exponents[0, 1] == plain.exponents[0, 1] and not guarded.degenerate[0, 1]
    assert guarded.risk.tolist() == [1 - 2 / 5]  # the model predicts class 0: rows 0 and 1 of LABELS
