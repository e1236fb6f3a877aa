"""LEGCNet: prune the weights whose chaos does not cause the misclassifications, then retrain.

Sahu, Chadha, Mathur, Nagaraj & Saha, "A Chaos-Causality Approach to Principled Pruning of Dense
Neural Networks" (arXiv 2308.09955; Chaos Theory and Applications 7, 2025). The flag defaults are
the clean protocol; the paper's recipes (--default_hparams=iris_sigmoid_6, *_sigmoid_50_30) set what
the authors' code did (models/recipes.py; docs/chaos-causality.md lists each knob and its effect):
  1. The dense network (the trunk) is trained with its risk split held out: with --risk_split=val
     (default) the trunk is the command's with --validation_fraction=--val_fraction, so the
     risk rows never train it; --risk_split=test is the paper's choice, the test set (which then
     takes part in the pruning decision).
  2. Its training is replayed from its initialization for --analysis_steps (deterministic, so it
     is the trunk's own trajectory; LEGCNet-FT analyses all of training, LEGCNet-PT the first few
     epochs), recording every analysed weight after each update (analysis/; see
     branches/chaos/recorder.py). In windows of --window updates overlapping by --overlap:
     each weight's largest Lyapunov exponent (Rosenstein's method with TISEAN's neighbour rule
     and first-step statistic, on values rounded to --decimals; a window whose range is below
     1e-5 is static and gets 0; with --change_points=ischange, as the authors' LE_window.m, so does
     a window where MATLAB's ischange(x, 'mean') finds a change point), and at each window's end the
     risk, 1 - accuracy (by --accuracy) on the risk split.
  3. For every analysed weight, Granger: does its exponent series cause the risk series
     (branches/chaos/causal_pruning.py)? The non-causal weights (min-p >= --alpha, p-values rounded
     to --pvalue_decimals; too few windows for --maxlag: see --lag_rule) are pruned.
  4. The pruned network is trained from the trunk's initialization (legcnet/), for the trunk's
     schedule or until --stop_at_train_accuracy; so are the controls with the same per-layer
     counts: random/ (seeded places) and magnitude/ (smallest |w| at the end of the analysed
     steps), and, with a benchmark, the dense network itself (dense/). These retrainings do not
     depend on each other: under `submit --local --stack` they train as one stack.
  5. The table (branches/chaos/table.py): % pruned, test accuracy, macro precision, recall and
     F1, epochs and seconds, and FLOPs per example, for dense, LEGCNet, random and magnitude.
The branch dir holds exponents.pt, risk.json, pvalues.pt, causality.json, mask.pt and
sparsity.json, and table.csv / table.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Optional

import torch

from branches.chaos.accuracy import ACCURACIES, accuracy_of, correct_rule, macro_scores
from branches.chaos.causal_pruning import (
    FDRS,
    INFEASIBLE,
    LAG_RULES,
    SCOPES,
    granger_causality,
    lags_tested,
    magnitude_control,
    mask_pruning,
    random_control,
)
from branches.chaos.recorder import RECORDS, Recording, TrajectoryRecorder, load_recording
from branches.chaos.table import HEADER, NetworkResult, pruned_percent, write_table
from branches.chaos.train_accuracy_stop import BENCHMARK_FILE, TrainAccuracyBenchmark
from foundations import paths
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.step import Step, check_step_syntax
from foundations.tables import print_table
from lyapunov import largest_lag, largest_lyapunov, window_starts, window_stride
from lyapunov.granger import TESTS
from lyapunov.neighbours import RULES
from lyapunov.rosenstein import FITS
from platforms.storage import read_json, save_torch, write_json
from pruning.mask import Mask
from runs import run_files
from runs.branch import Branch, final_model, load_mask, train_masked
from runs.trunk import Trunk
from training.flops import forward_flops
from training.loop import train, train_together
from training.losses import Loss

NAME = "chaos-causality"
SUMMARY = "LEGCNet: prune weights whose Lyapunov exponents do not Granger-cause the risk, retrain, with controls"
STATIC_RANGE = 1e-5  # the paper: a window moving less than this has exponent 0
SMALLEST_GRANGER = 5  # windows: the Granger test at lag 1 needs more than 3 * 1 + 1 points
RISK_SPLITS = ("val", "test")
CHANGE_POINTS = ("none", "ischange")
VAL_FRACTION = 0.1


@dataclass
class ChaosHparams(Hparams):
    _name = "Chaos-Causality Hyperparameters"
    _description = "What is recorded, how exponents and Granger tests are computed, and what is retrained."

    analysis_steps: Optional[str] = hparam(
        None, "replay and record this many steps of the trunk's training (default: all of it; the paper's "
              "PT variant: about 5ep)")
    analysis_layers: Optional[str] = hparam(
        None, "comma-separated weights analysed (and pruned) (default: every prunable weight)", is_list=True)
    window: int = hparam(50, "updates per window")
    overlap: float = hparam(0.1, "fraction of a window shared with the next, in [0, 1): stride round((1-o) W)")
    record: str = hparam("weights", "weights (the iterates) | updates (their differences)", choices=RECORDS)
    neighbours: str = hparam("tisean", "nearest-neighbour rule: tisean (lyap_r's, the paper's) | nolds",
                             choices=RULES)
    fit: str = hparam("diff", "diff (curve[1] - curve[0], the paper's statistic) | poly (Rosenstein's "
                              "least-squares slope)", choices=FITS)
    emb_dim: int = hparam(2, "embedding dimension")
    lag: int = hparam(1, "embedding delay")
    min_tsep: int = hparam(0, "Theiler window: a neighbour must be more than this many steps away")
    trajectory_len: int = hparam(4, "steps each neighbour pair is followed")
    decimals: int = hparam(6, "round the recorded values to this many decimals first (the paper's files)")
    change_points: str = hparam("none", "none | ischange (the authors' LE_window.m: a window where MATLAB's "
                                        "ischange(x,'mean') finds a change point gets exponent 0)",
                                choices=CHANGE_POINTS)
    accuracy: str = hparam("argmax", "argmax | authors (sigmoid outputs: exact match of the rounded outputs with the "
                                     "one-hot label; argmax otherwise): the risk, the benchmark and the table's "
                                     "test accuracy", choices=ACCURACIES)
    risk_split: str = hparam("val", "where the risk is measured: val (held out of training by --val_fraction) | "
                                    "test (the paper's: leaks the test set into pruning)", choices=RISK_SPLITS)
    val_fraction: float = hparam(VAL_FRACTION,
                                 "with --risk_split=val: the share of the training set held out (stratified)")
    maxlag: int = hparam(14, "Granger lags 1..maxlag (see --lag_rule)")
    lag_rule: str = hparam("cap", "cap (lags capped at what the number of windows allows) | authors (too few windows "
                                  "for maxlag: their statsmodels call raised and every weight was kept)",
                           choices=LAG_RULES)
    pvalue_decimals: int = hparam(-1, "round each lag's p-value to this many decimals before the minimum (the "
                                      "authors': 4); -1 leaves them exact")
    granger_test: str = hparam("ssr_chi2test", "statsmodels' test whose p-value is used: ssr_chi2test (the paper's) | "
                                               "ssr_ftest | lrtest", choices=TESTS)
    alpha: float = hparam(0.05, "weights whose min-p is at least alpha are non-causal and pruned, in (0, 1)")
    fdr: str = hparam("none", "none | bh (Benjamini-Hochberg over the analysed weights)", choices=FDRS)
    on_infeasible: str = hparam("keep", "weights whose test is infeasible (constant series): keep (the paper) | "
                                        "prune", choices=INFEASIBLE)
    stop_at_train_accuracy: Optional[float] = hparam(
        None, "end each retraining at the first evaluation where the training accuracy reaches this, in (0, 1]")
    magnitude_scope: str = hparam("layerwise", "magnitude control: layerwise (LEGCNet's per-layer counts) | global "
                                               "(its total, ranked across the analysed layers)", choices=SCOPES)
    seed: Optional[int] = hparam(None, "seed of the random control (default: derived from the replicate)")

    def validate(self) -> None:
        if self.window < 2:
            raise UserError(f"--window={self.window} must be at least 2 updates")
        if not 0 <= self.overlap < 1:
            raise UserError(f"--overlap={self.overlap} is outside [0, 1): give the fraction of a window shared "
                            f"with the next, such as 0.1")
        window_stride(self.window, self.overlap)  # some step between windows
        if self.analysis_steps is not None:
            check_step_syntax(self.analysis_steps, "analysis_steps")
        if not 0 < self.alpha < 1:
            raise UserError(f"--alpha={self.alpha} is outside (0, 1): give a significance level such as 0.05")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val_fraction={self.val_fraction} is outside (0, 1): give a fraction such as 0.1")
        if self.risk_split == "test" and self.val_fraction != VAL_FRACTION:
            raise UserError(f"--val_fraction={self.val_fraction} sizes the validation split, but --risk_split=test "
                            f"measures the risk on the test set: drop one of the two")
        if self.maxlag < 1:
            raise UserError(f"--maxlag={self.maxlag} must be at least 1")
        if not -1 <= self.pvalue_decimals <= 15:
            raise UserError(f"--pvalue_decimals={self.pvalue_decimals} is outside -1..15: the authors rounded to 4, "
                            f"-1 keeps the p-values exact")
        if not 0 <= self.decimals <= 15:
            raise UserError(f"--decimals={self.decimals} is outside 0..15: the paper's files had 6")
        if self.stop_at_train_accuracy is not None and not 0 < self.stop_at_train_accuracy <= 1:
            raise UserError(f"--stop_at_train_accuracy={self.stop_at_train_accuracy} is outside (0, 1]: "
                            f"give a training accuracy such as 0.9")

    def lyapunov_options(self) -> dict:
        """largest_lyapunov's options. Ranges are compared on the decimals grid, where "range below
        1e-5" is "range at most 1e-5 minus half a grid unit" (9.5e-6 for 6 decimals: the same
        windows as the paper's 9e-6; on a grid of 1e-5 or coarser, a range of 0)."""
        tol = max(STATIC_RANGE - 0.5 * 10.0 ** -self.decimals, 0.0)
        return dict(emb_dim=self.emb_dim, lag=self.lag, min_tsep=self.min_tsep, trajectory_len=self.trajectory_len,
                    fit=self.fit, neighbours=self.neighbours, decimals=self.decimals, tol=tol, degenerate_value=0.0)


BUNDLES = {"chaos": ChaosHparams}


# ---- what is analysed --------------------------------------------------------------------------
def trunk_of(branch: Branch) -> Trunk:
    """The trunk this branch grows from (`locate` asks): the dense run whose training split leaves
    the risk rows out, i.e. the command's trunk with --validation_fraction=--val_fraction (or the
    command's trunk itself for --risk_split=test)."""
    h, trunk = branch.bundles["chaos"], branch.trunk
    if h.risk_split == "test":
        return trunk
    given = trunk.desc.dataset.validation_fraction
    if given is not None and given != h.val_fraction:
        raise UserError(f"--validation_fraction={given} and --val_fraction={h.val_fraction} disagree: the risk split "
                        f"is the trunk's validation split, so give only --val_fraction")
    desc = replace(trunk.desc, dataset=trunk.desc.dataset.replace(validation_fraction=h.val_fraction))
    return Trunk(desc, trunk.replicate, trunk.platform)


def analysed_layers(branch: Branch) -> list[str]:
    names = branch.trunk.prunable_layer_names
    flag = branch.bundles["chaos"].analysis_layers
    if flag is None:
        return list(names)
    chosen = {name.strip() for name in flag.split(",") if name.strip()}
    unknown = sorted(chosen - set(names))
    if unknown or not chosen:
        raise UserError(f"--analysis_layers names unknown layer(s) {', '.join(unknown) or '(none given)'}; "
                        f"valid names are: {', '.join(names)}")
    return [name for name in names if name in chosen]


def analysis_end(branch: Branch) -> Step:
    h, trunk = branch.bundles["chaos"], branch.trunk
    return trunk.step(h.analysis_steps, "analysis_steps") if h.analysis_steps else trunk.end_step


def count_windows(branch: Branch) -> int:
    h = branch.bundles["chaos"]
    steps = analysis_end(branch).iteration
    if steps < h.window:
        raise UserError(f"--window={h.window} is longer than the {steps} analysed steps: use a shorter --window "
                        f"or analyse more steps (--analysis_steps)")
    windows = len(window_starts(steps, h.window, h.overlap))
    if windows < SMALLEST_GRANGER:
        raise UserError(f"--window={h.window} with --overlap={h.overlap} gives {windows} windows over the {steps} "
                        f"analysed steps; the Granger test needs at least {SMALLEST_GRANGER}: use a shorter "
                        f"--window or analyse more steps (--analysis_steps)")
    return windows


def check(branch: Branch) -> None:
    """Refuse bad flags before anything is trained."""
    h, trunk = branch.bundles["chaos"], branch.trunk
    if trunk.info.task != "classification":
        raise UserError(f"{trunk.desc.dataset.dataset_name} is a regression task, but the chaos-causality test needs "
                        f"a misclassification risk: use a classification dataset (iris, wine, breastcancer, "
                        f"fashionmnist, ...)")
    analysed_layers(branch)
    count_windows(branch)
    largest_lyapunov(torch.zeros(1, h.window, dtype=torch.float64), **h.lyapunov_options())  # the options fit
    trunk.loader(h.risk_split)


# ---- the method ----------------------------------------------------------------------------------
def loss_of(trunk: Trunk) -> Loss:
    return Loss(trunk.desc.training.loss, trunk.info.task, trunk.info.num_classes)


def correct_of(branch: Branch):
    """The per-example rule of --accuracy for this trunk's loss (branches/chaos/accuracy.py)."""
    return correct_rule(branch.bundles["chaos"].accuracy, loss_of(branch.trunk).name)


def record_trajectory(branch: Branch, layers: list[str]) -> Recording:
    """Replay the trunk's training from its initialization with the recorder (analysis/), unless
    that is done; a finished analysis whose recording is damaged is replayed again."""
    h, trunk = branch.bundles["chaos"], branch.trunk
    platform, directory, end = trunk.platform, branch.dir / "analysis", analysis_end(branch)
    platform.on_primary(run_files.open_run_dir, directory)
    recording = None
    if platform.on_primary(run_files.finished, directory, end) is not None:
        recording = platform.on_primary(load_recording, branch.dir)
        if recording is None:
            platform.on_primary(_set_aside_analysis, branch)
    if recording is None:
        recorder = TrajectoryRecorder(layers, steps=end.iteration, window=h.window, overlap=h.overlap,
                                      record=h.record, risk_loader=trunk.loader(h.risk_split), loss=loss_of(trunk),
                                      lyapunov_options=h.lyapunov_options(), results_dir=branch.dir,
                                      risk_split=h.risk_split, correct=correct_of(branch),
                                      change_point_guard=h.change_points == "ischange")
        train(trunk.initial_model(), trunk.desc.training, trunk.loader(True), trunk.loader(False), directory,
              platform=platform, data_order_seed=trunk.seeds["data_order"], end=end, hooks=[recorder])
        recording = recorder.result()
    return recording


def _set_aside_analysis(branch: Branch) -> None:
    done = branch.dir / "analysis" / paths.DONE
    run_files.set_aside(done)
    run_files.say(f"{branch.dir / 'exponents.pt'} or risk.json is missing or unreadable; replaying the analysis")


def prune_non_causal(branch: Branch, recording: Recording, layers: list[str]) -> Mask:
    """The Granger test of every analysed weight; pvalues.pt, causality.json, then the mask."""
    h, trunk = branch.bundles["chaos"], branch.trunk
    windows = recording.risk.shape[0]
    lags = lags_tested(h.maxlag, windows, h.lag_rule)
    if lags == 0:
        run_files.say(f"--maxlag={h.maxlag} is more than {windows} windows allow (statsmodels needs more than "
                      f"{3 * h.maxlag + 1}); --lag_rule=authors keeps every weight, as their code did "
                      f"(--lag_rule=cap tests lags 1..{largest_lag(windows)})")
    elif lags < h.maxlag:
        run_files.say(f"--maxlag={h.maxlag} is more than {windows} windows allow: testing lags 1..{lags}")
    if bool((recording.risk == recording.risk[0]).all()):
        run_files.say(f"the risk is {recording.risk[0].item():.4f} in every window: no weight can be tested "
                      f"(--on_infeasible={h.on_infeasible} decides them all)")
    test = granger_causality(recording, maxlag=h.maxlag, test=h.granger_test, alpha=h.alpha, fdr=h.fdr,
                             on_infeasible=h.on_infeasible, device=trunk.platform.device, lag_rule=h.lag_rule,
                             pvalue_decimals=h.pvalue_decimals)
    save_torch({"min_p": test.min_p, "adjusted": test.adjusted, "infeasible": test.infeasible,
                "pruned": test.pruned, "layers": layers}, branch.dir / "pvalues.pt")
    write_json({"windows": windows, "maxlag": test.maxlag, "test": h.granger_test, "alpha": h.alpha, "fdr": h.fdr,
                "lag_rule": h.lag_rule, "pvalue_decimals": h.pvalue_decimals,
                "on_infeasible": h.on_infeasible, "analysed": int(test.pruned.numel()),
                "pruned": int(test.pruned.sum()), "infeasible": int(test.infeasible.sum())},
               branch.dir / "causality.json")
    mask = mask_pruning(Mask.ones_like(trunk.fresh_model()), layers, test.pruned).to("cpu")
    mask.save(branch.dir)
    return mask


def retrain(branch: Branch, name: str, mask: Mask) -> dict:
    """Train the trunk's initialization under `mask` in <branch>/<name>/ (timed, and stopped at
    the benchmark if there is one)."""
    trunk = branch.trunk
    hook = TrainAccuracyBenchmark(branch.bundles["chaos"].stop_at_train_accuracy, loss_of(trunk), correct_of(branch))
    return train_masked(trunk, branch.dir / name, trunk.initial_model(), mask, hooks=[hook])


def control_masks(branch: Branch, mask: Mask, layers: list[str]) -> dict[str, Mask]:
    h = branch.bundles["chaos"]
    controls = {"random": load_mask(branch.dir / "random"), "magnitude": load_mask(branch.dir / "magnitude")}
    if controls["random"] is None:
        controls["random"] = random_control(mask, layers, branch.seed())
    if controls["magnitude"] is None:
        trained = dict(final_model(branch.trunk, branch.dir / "analysis").named_parameters())
        controls["magnitude"] = magnitude_control(mask, trained, layers, h.magnitude_scope).to("cpu")
    return controls


def result_of(branch: Branch, label: str, mask: Optional[Mask], run_dir, layers: list[str]) -> NetworkResult:
    trunk = branch.trunk
    done = trunk.platform.on_primary(run_files.finished, run_dir, trunk.end_step)
    try:
        benchmark = read_json(run_dir / BENCHMARK_FILE)
    except (OSError, ValueError):  # the trunk itself: timed by its own done.json
        benchmark = {"seconds": done.get("seconds_this_session"), "reached": None}
    reached = benchmark.get("reached") if branch.bundles["chaos"].stop_at_train_accuracy is not None else None
    # A stacked run's clock is its stack's (N runs shared each step): not this network's time.
    seconds = None if done.get("stacked") else benchmark.get("seconds")
    model, test = final_model(trunk, run_dir), trunk.loader(False)
    scores = macro_scores(model, test)
    example = next(iter(test.batches(0)))[0][0]
    flops = forward_flops(model, example, None if mask is None else dict(mask.items()))
    return NetworkResult(
        network=label, pruned_analysed_percent=pruned_percent(mask, layers), pruned_all_percent=pruned_percent(mask),
        test_accuracy=accuracy_of(model, test, correct_of(branch)), macro_precision=scores["precision"],
        macro_recall=scores["recall"], macro_f1=scores["f1"],
        epochs=done["final_iteration"] / trunk.iterations_per_epoch, seconds=seconds,
        benchmark=reached, flops=flops, run=str(run_dir))


RESULT_COLUMNS = {"% pruned (analysed)": "pruned_analysed_percent", "% pruned (all)": "pruned_all_percent",
                  "test accuracy": "test_accuracy", "macro-precision": "macro_precision",
                  "macro-recall": "macro_recall", "macro-F1": "macro_f1", "epochs": "epochs", "seconds": "seconds",
                  "FLOPs": "flops"}


def summary(branch: Branch) -> dict:
    """What the reading commands show: LEGCNet's test accuracy and share pruned (the headline), and
    the table's rows, network by network (the results `report` summarizes over replicates)."""
    networks = read_json(branch.dir / "table.json")["networks"]
    legcnet = next(n for n in networks if n["network"] == "LEGCNet")
    return {"headline": [["LEGCNet accuracy", legcnet["test_accuracy"]], ["% pruned", legcnet["pruned_all_percent"]]],
            "results": [[n["network"], {column: n.get(key) for column, key in RESULT_COLUMNS.items()}]
                        for n in networks]}


def run(branch: Branch) -> list[list[str]]:
    h, trunk = branch.bundles["chaos"], branch.trunk
    layers = analysed_layers(branch)
    recording = record_trajectory(branch, layers)
    mask = load_mask(branch.dir) or trunk.platform.on_primary(prune_non_causal, branch, recording, layers)
    networks: list[tuple[str, Optional[Mask], object]] = []
    retrainings: dict[str, Mask] = {}  # one init, each under its mask
    if h.stop_at_train_accuracy is None:
        networks.append(("dense (trunk)", None, trunk.dir))
    else:
        retrainings["dense"] = Mask.ones_like(trunk.fresh_model())
        networks.append(("dense", None, branch.dir / "dense"))
    retrainings["legcnet"] = mask
    networks.append(("LEGCNet", mask, branch.dir / "legcnet"))
    for name, control in control_masks(branch, mask, layers).items():
        retrainings[name] = control
        networks.append((f"{name} (equal counts)", control, branch.dir / name))
    train_together([partial(retrain, branch, name, m) for name, m in retrainings.items()])  # stacked under --stack
    results = [result_of(branch, label, m, directory, layers) for label, m, directory in networks]
    rows = trunk.platform.on_primary(write_table, branch.dir, results)
    print(f"chaos-causality ({recording.risk.shape[0]} windows of {h.window} updates, risk on {h.risk_split}):")
    print_table(HEADER, rows)
    if any(r.seconds is None for r in results):
        print("seconds: '-' where a network trained stacked (submit --stack): its clock counts the whole stack")
    def density(m):
        return "1.0000" if m is None else f"{m.density:.4f}"
    return [[label, density(m), f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "-", str(directory)]
            for (label, m, directory), r in zip(networks, results)]
