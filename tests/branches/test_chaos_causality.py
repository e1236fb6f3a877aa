"""The chaos-causality (LEGCNet) branch end to end through the CLI on iris, each result against an
oracle: the ring buffer's exponents against `windowed_exponents` of the whole trajectory recorded
separately, the risk against the recorded weights' accuracy on rows that really are held out,
the replay against the trunk bitwise, p-values against statsmodels, the mask against min-p >=
alpha, the controls' counts and magnitudes by hand, pruned weights at zero after retraining."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from statsmodels.tools.sm_exceptions import InfeasibleTestError
from statsmodels.tsa.stattools import grangercausalitytests

import branches.chaos.chaos_causality as chaos
import datasets.registry
import open_prune
import runs.branch as base
from lyapunov import windowed_exponents
from runs.target import branch_target
from training.hooks import Hook

# The clean protocol (every knob of the authors' iris recipe set back to ours; the benchmark stays).
CLEAN = ["--risk_split=val", "--accuracy=argmax", "--change_points=none", "--lag_rule=cap", "--pvalue_decimals=-1",
         "--data_order=shuffled", "--table_split=stratified", "--model_init=kaiming_normal", "--bias_init=pytorch"]
FLAGS = ["--default_hparams=iris_sigmoid_6", "--training_steps=6ep", "--window=40", "--maxlag=3", "--quiet", *CLEAN]
IPE = 108  # iris: 120 training rows, 12 held out for the risk, batch 1
WINDOW, STRIDE = 40, 36
LAYERS = ["fc_layers.0.weight", "fc.weight"]


def cli(root: Path, *argv: str) -> tuple[int, str, str]:
    datasets.registry.clear_cache()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = open_prune.main([*argv, f"--root={root}", "--device=cpu"])
    return code, out.getvalue(), err.getvalue()


def branch_dir(root: Path, *flags: str) -> Path:
    code, out, err = cli(root, "branch", "chaos-causality", *flags, "--display_output_location")
    assert code == 0, err
    return Path(out.strip())


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


class Spy(Hook):
    """The whole trajectory of the analysed weights (and the initial ones), and every state dict."""

    def __init__(self):
        self.flat, self.states = [], {}

    def _take(self, state):
        weights = dict(state.model.named_parameters())
        self.flat.append(torch.cat([weights[name].detach().reshape(-1) for name in LAYERS]).double())
        self.states[state.iteration] = {k: v.clone() for k, v in state.model.state_dict().items()}

    def on_start(self, state):
        self._take(state)

    def after_optimizer_step(self, state):
        self._take(state)


def spied_run(root: Path, *flags: str) -> tuple[Path, Spy]:
    spy, real_train = Spy(), chaos.train

    def train(*args, **kwargs):
        return real_train(*args, **{**kwargs, "hooks": [*kwargs["hooks"], spy]})

    chaos.train = train
    try:
        code, out, err = cli(root, "branch", "chaos-causality", *flags)
    finally:
        chaos.train = real_train
    assert code == 0, err
    assert "LEGCNet" in out and "random (equal counts)" in out and "magnitude (equal counts)" in out
    return branch_dir(root, *flags), spy


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module")
def finished(root) -> tuple[Path, Spy]:
    return spied_run(root, *FLAGS)


def test_the_files_and_the_pinned_hash(finished):
    path, _ = finished
    for name in ("exponents.pt", "risk.json", "pvalues.pt", "causality.json", "mask.pt", "sparsity.json",
                 "table.csv", "table.json", "hparams.json", "branch_done.json"):
        assert (path / name).exists(), name
    for sub in ("analysis", "legcnet", "random", "magnitude"):
        assert (path / sub / "done.json").exists(), sub
    assert (path / "dense" / "done.json").exists()  # the recipe's benchmark: the dense network is retrained too
    assert path.name == "branch_chaos-causality_1343fac7ef5714914c73"  # the recipe adds the benchmark 0.95
    table = json.loads((path / "table.json").read_text())
    assert [n["network"] for n in table["networks"]] == [
        "dense", "LEGCNet", "random (equal counts)", "magnitude (equal counts)"]


def test_ring_buffer_exponents_equal_the_whole_trajectory_windowed(finished):
    path, spy = finished
    trajectory = torch.stack(spy.flat[1:])  # snapshot t: after step t + 1
    assert trajectory.shape == (6 * IPE, 42)
    options = chaos.ChaosHparams().lyapunov_options()
    expected = windowed_exponents(trajectory, WINDOW, 0.1, **options)
    recorded = load(path / "exponents.pt")
    assert recorded["exponents"].shape == (17, 42) and recorded["layers"] == LAYERS
    assert torch.equal(recorded["exponents"], expected.exponents)
    assert torch.equal(recorded["degenerate"], expected.degenerate)
    assert recorded["window_end_iterations"].tolist() == [STRIDE * i + WINDOW for i in range(17)]
    assert (recorded["exponents"] != 0).float().mean() > 0.9  # moving weights: real exponents


def test_risk_is_the_held_out_misclassification_at_each_window_end(finished):
    path, spy = finished
    branch, _ = branch_target(chaos.NAME).parse([*FLAGS, "--device=cpu"])
    trunk = branch.trunk  # parsing puts the branch on its risk trunk
    assert trunk.desc.dataset.validation_fraction is not None
    whole_desc = dataclasses.replace(trunk.desc, dataset=trunk.desc.dataset.replace(validation_fraction=None))
    val, train = trunk.loader("val"), trunk.loader("train")
    whole = chaos.Trunk(whole_desc, 1, trunk.platform).loader("train")  # no rows held out
    def rows(loader):
        return {tuple(row.tolist()) for row in loader.images}
    assert len(rows(val)) == 12 and not rows(val) & rows(train) and rows(val) | rows(train) == rows(whole)
    model = trunk.fresh_model()
    risk = []
    for end in [STRIDE * i + WINDOW for i in range(17)]:
        model.load_state_dict(spy.states[end])
        with torch.no_grad():
            risk.append(1 - (model(val.images).argmax(1) == val.labels).double().mean().item())
    recorded = json.loads((path / "risk.json").read_text())
    assert recorded["split"] == "val"
    np.testing.assert_allclose(recorded["risk"], risk, rtol=0, atol=1e-15)
    assert len(set(risk)) > 1


def test_recorded_updates_over_the_first_epochs(root):
    path, spy = spied_run(root, *FLAGS, "--record=updates", "--analysis_steps=3ep")
    trajectory = torch.stack(spy.flat)  # the initial weights, then after each step
    assert trajectory.shape == (3 * IPE + 1, 42)
    expected = windowed_exponents(trajectory.diff(dim=0), WINDOW, 0.1, **chaos.ChaosHparams().lyapunov_options())
    recorded = load(path / "exponents.pt")
    assert recorded["exponents"].shape == (8, 42)
    assert torch.equal(recorded["exponents"], expected.exponents)
    # The magnitude control ranks the weights at the end of the analysed steps (3 epochs).
    analysed_end = spy.states[3 * IPE]
    mask, magnitude = load(path / "mask.pt"), load(path / "magnitude" / "mask.pt")
    for name in LAYERS:
        pruned = int((~mask[name]).sum())
        order = analysed_end[name].abs().reshape(-1).argsort(stable=True)
        assert not magnitude[name].reshape(-1)[order[:pruned]].any()
        assert magnitude[name].reshape(-1)[order[pruned:]].all()


def test_the_replay_is_the_trunks_own_training_bitwise(finished):
    path, _ = finished
    trunk_dir = next(path.parent.glob("main"))
    replay, trunk = load(path / "analysis" / "model_ep6_it0.pt"), load(trunk_dir / "model_ep6_it0.pt")
    assert all(torch.equal(replay[k], trunk[k]) for k in trunk)
    hparams = json.loads((trunk_dir / "hparams.json").read_text())["hparams"]
    assert hparams["dataset"]["validation_fraction"] == 0.1


def test_pvalues_equal_statsmodels_and_the_mask_is_min_p_at_least_alpha(finished):
    path, _ = finished
    exponents = load(path / "exponents.pt")["exponents"].numpy()
    risk = np.array(json.loads((path / "risk.json").read_text())["risk"])
    p = load(path / "pvalues.pt")
    for w in range(exponents.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = grangercausalitytests(np.column_stack([risk, exponents[:, w]]), 3)
            except InfeasibleTestError:
                assert p["infeasible"][w]
                continue
        assert not p["infeasible"][w]
        expected = min(result[lag][0]["ssr_chi2test"][1] for lag in (1, 2, 3))
        assert p["min_p"][w].item() == pytest.approx(expected, rel=1e-8, abs=1e-12)
    mask = load(path / "mask.pt")
    kept = torch.cat([mask[name].reshape(-1) for name in LAYERS])
    assert torch.equal(~kept, (p["min_p"] >= 0.05) & ~p["infeasible"])
    assert 0 < (~kept).sum() < kept.numel()
    assert json.loads((path / "causality.json").read_text())["pruned"] == int((~kept).sum())


def test_retraining_keeps_pruned_weights_at_zero_and_controls_match_counts(finished):
    path, _ = finished
    mask = load(path / "mask.pt")
    final = load(path / "legcnet" / "model_ep6_it0.pt")
    init = load(path / "legcnet" / "model_ep0_it0.pt")
    trunk_init = load(next(path.parent.glob("main")) / "model_ep0_it0.pt")
    for name in LAYERS:
        assert (final[name][~mask[name]] == 0).all() and (final[name][mask[name]] != 0).all()
        assert torch.equal(init[name], trunk_init[name] * mask[name])  # lottery style: the trunk's init
    trained = load(path / "analysis" / "model_ep6_it0.pt")
    random_mask, magnitude_mask = load(path / "random" / "mask.pt"), load(path / "magnitude" / "mask.pt")
    for name in LAYERS:
        pruned = int((~mask[name]).sum())
        assert int((~random_mask[name]).sum()) == pruned == int((~magnitude_mask[name]).sum())
        order = trained[name].abs().reshape(-1).argsort(stable=True)  # smallest |w| first, lower index on ties
        expected = torch.ones(mask[name].numel(), dtype=torch.bool)
        expected[order[:pruned]] = False
        assert torch.equal(magnitude_mask[name].reshape(-1), expected)
    assert any(not torch.equal(random_mask[n], mask[n]) for n in LAYERS)
    table = json.loads((path / "table.json").read_text())["networks"]
    share = 100 * sum(int((~mask[n]).sum()) for n in LAYERS) / 42
    assert [round(n["pruned_analysed_percent"], 9) for n in table] == [0.0] + [round(share, 9)] * 3


def test_a_rerun_trains_nothing_and_prints_the_same_table(root, finished, monkeypatch):
    path, _ = finished
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}
    first = (path / "table.csv").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished branch trained again")

    monkeypatch.setattr(chaos, "train", refuse)
    monkeypatch.setattr(base, "train", refuse)
    code, out, err = cli(root, "branch", "chaos-causality", *FLAGS)
    assert code == 0, err
    assert "LEGCNet" in out and (path / "table.csv").read_text() == first
    changed = [p for p, t in before.items()
               if p.stat().st_mtime_ns != t and p.name not in ("branch_done.json", ".lock")]
    assert not changed, changed


class Kill(Hook):
    def after_optimizer_step(self, state):
        if state.iteration == 250:  # after the checkpoint at 216: the resume replays 216..250
            raise KeyboardInterrupt


def test_a_killed_analysis_resumes_bitwise(tmp_path, finished, monkeypatch):
    whole, _ = finished
    real_train = chaos.train
    monkeypatch.setattr(chaos, "train", lambda *a, **k: real_train(*a, **{**k, "hooks": [*k["hooks"], Kill()]}))
    code, _, err = cli(tmp_path, "branch", "chaos-causality", *FLAGS)
    assert code == 130 and "resume" in err
    killed = branch_dir(tmp_path, *FLAGS)
    assert (killed / "analysis" / "checkpoint.pt").exists() and not (killed / "exponents.pt").exists()
    monkeypatch.setattr(chaos, "train", real_train)
    code, _, err = cli(tmp_path, "branch", "chaos-causality", *FLAGS)
    assert code == 0, err
    for name in ("exponents.pt", "pvalues.pt", "mask.pt", "legcnet/model_ep6_it0.pt", "random/model_ep6_it0.pt"):
        a, b = load(whole / name), load(killed / name)
        assert a.keys() == b.keys() and all(
            torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a), name
    for name in ("risk.json", "causality.json", "analysis/metrics.jsonl"):
        assert (whole / name).read_text() == (killed / name).read_text(), name


def test_the_test_split_and_a_benchmark_that_stops_training(root):
    # Nothing held out: 120 steps per epoch. Windows of 30 with stride 15 end at every epoch's end,
    # where the risk must be 1 - the test accuracy the loop logs.
    flags = [*FLAGS, "--risk_split=test", "--window=30", "--overlap=0.5", "--stop_at_train_accuracy=0.8",
             "--lr=0.5", "--maxlag=20"]
    code, out, err = cli(root, "branch", "chaos-causality", *flags)
    assert code == 0, err
    assert "--maxlag=20 is more than 47 windows allow: testing lags 1..15" in err
    path = branch_dir(root, *flags)
    assert json.loads((path / "causality.json").read_text())["maxlag"] == 15
    trunk_hparams = json.loads((path.parent / "main" / "hparams.json").read_text())["hparams"]
    assert trunk_hparams["dataset"]["validation_fraction"] is None  # the paper's trunk: nothing held out
    risk = json.loads((path / "risk.json").read_text())
    records = [json.loads(line) for line in (path / "analysis" / "metrics.jsonl").read_text().splitlines()]
    test_accuracy = {r["iteration"]: r["value"] for r in records if r["name"] == "test_accuracy"}
    ends = risk["window_end_iterations"]
    for epoch in range(1, 7):
        assert risk["risk"][ends.index(epoch * 120)] == pytest.approx(1 - test_accuracy[epoch * 120], abs=1e-15)
    for network in ("dense", "legcnet", "random", "magnitude"):
        benchmark = json.loads((path / network / "benchmark.json").read_text())
        lines = [json.loads(line) for line in (path / network / "metrics.jsonl").read_text().splitlines()]
        accuracy = {r["iteration"]: r["value"] for r in lines if r["name"] == "train_accuracy"}
        stop = max(accuracy)
        done = json.loads((path / network / "done.json").read_text())
        if benchmark["reached"]:
            assert accuracy[stop] >= 0.8 and all(v < 0.8 for i, v in accuracy.items() if i < stop)
            assert done["final_iteration"] == stop == benchmark["iteration"] and "stopped_early" in done
            assert (path / network / f"model_ep{stop // 120}_it{stop % 120}.pt").exists()
        else:
            assert all(v < 0.8 for v in accuracy.values()) and done["final_iteration"] == 6 * 120
    assert json.loads((path / "dense" / "benchmark.json").read_text())["reached"]
    assert "reached" in out


@pytest.mark.parametrize("flags, needles", [
    (["--window=700"], ["--window=700", "longer than the 648 analysed steps", "--analysis_steps"]),
    (["--window=200"], ["gives 3 windows", "at least 5"]),
    (["--overlap=1.0"], ["--overlap=1.0", "[0, 1)"]),
    (["--overlap=0.99"], ["overlap=0.99 leaves no step between windows"]),
    (["--analysis_layers=fc_layers.9.weight"], ["fc_layers.9.weight", "fc.weight"]),
    (["--alpha=1.5"], ["--alpha=1.5", "(0, 1)"]),
    (["--validation_fraction=0.2"], ["--val_fraction", "disagree"]),
    (["--risk_split=test", "--val_fraction=0.2"], ["--val_fraction=0.2", "--risk_split=test"]),
    (["--analysis_steps=7ep"], ["analysis_steps", "beyond the end"]),
    (["--stop_at_train_accuracy=0"], ["stop_at_train_accuracy", "(0, 1]"]),
    (["--trajectory_len=40"], ["too short", "trajectory_len=40"]),
])
def test_bad_input_is_one_clear_line_and_trains_nothing(tmp_path, flags, needles):
    code, _, err = cli(tmp_path, "branch", "chaos-causality", *FLAGS, *flags)
    assert code == 2 and err.count("\n") == 1 and err.startswith("open_prune: error:"), err
    for needle in needles:
        assert needle in err, err
    assert not any(tmp_path.rglob("*.json"))


def test_a_regression_dataset_is_refused_with_advice_that_works(tmp_path):
    code, _, err = cli(tmp_path, "branch", "chaos-causality", "--default_hparams=sine_sigmoid_8", "--quiet")
    assert code == 2 and "regression" in err and "iris" in err


@pytest.mark.parametrize("recipe, window", [("iris_sigmoid_6", 160), ("breastcancer_sigmoid_6", 200),
                                            ("fashionmnist_sigmoid_50_30", 50), ("fashionmnist_lenet_300_100", 50)])
def test_the_recipes_carry_the_papers_windows(tmp_path, recipe, window):
    branch, _ = branch_target(chaos.NAME).parse([f"--default_hparams={recipe}", f"--root={tmp_path}", "--device=cpu"])
    assert branch.bundles["chaos"].window == window
    assert branch.bundles["chaos"].window == chaos.ChaosHparams(window=window).window
    assert chaos.ChaosHparams().lyapunov_options()["tol"] == pytest.approx(9.5e-6)  # 6-decimal grid: < 1e-5


def test_the_reading_commands_show_legcnets_accuracy_and_share_pruned(finished, root):
    from reports.rundirs import read_run

    path, _ = finished
    legcnet = next(n for n in json.loads((path / "table.json").read_text())["networks"] if n["network"] == "LEGCNet")
    state = read_run(path, root).state
    assert state.headline == {"LEGCNet accuracy": legcnet["test_accuracy"], "% pruned": legcnet["pruned_all_percent"]}
    networks = json.loads((path / "table.json").read_text())["networks"]  # the table, row by row, for `report`
    assert list(state.results) == [n["network"] for n in networks]
    assert state.results["LEGCNet"]["macro-F1"] == legcnet["macro_f1"]
    assert state.results["LEGCNet"]["% pruned (analysed)"] == legcnet["pruned_analysed_percent"]
