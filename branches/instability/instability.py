"""Instability analysis: linear mode connectivity (Frankle, Dziugaite, Roy & Carbin, ICML 2020).

Take the trunk's weights W_k at --from_step (with --mask_run, W_k under that run's mask), train
two copies from step k to the end of training, each with its own data order (its own sample of
SGD noise), and evaluate the test error of (1 - alpha) W_a + alpha W_b at --points evenly spaced
alpha in [0, 1] (branches/instability/interpolation.py). The error barrier, the paper's instability, is the
largest error on that line minus the mean of the two ends' errors; the paper calls a network
stable at step k when it is at most 2 points of error.

Under a mask the table carries the paper's two baselines at the same sparsity, trained from the
same step with the same two data orders: random pruning (the mask shuffled within each layer, on
W_k) and random reinitialization (the mask on a fresh draw of the initialization). With
--same_data_order both copies take copy A's order: a null whose barrier is nondeterminism alone
(exactly 0 on the CPU).

    branch_instability_<hash>/copy_a, copy_b                 the two copies (resumable run dirs)
    branch_instability_<hash>/<control>/copy_a, copy_b       the controls, under a mask
    branch_instability_<hash>/curve.json, curve.csv          the curves and barriers
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from branches.instability.interpolation import Curve, evaluate_path, has_batchnorm
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.seeds import digest_seed
from foundations.step import Step, check_step_syntax
from foundations.tables import format_metric, print_table
from platforms.storage import read_json, write_json, write_text
from pruning.mask import Mask
from runs import parent_run
from runs.branch import Branch, final_model, train_masked
from training.losses import Loss

NAME = "instability"
SUMMARY = "linear mode connectivity: two copies from a step, two data orders, test error on the line between them"
CONTROLS = ("random_pruning", "reinit")
COPIES = ("copy_a", "copy_b")
CURVE_JSON, CURVE_CSV = "curve.json", "curve.csv"
STABLE = 0.02  # the paper's threshold on the error barrier
ENTRY_KEYS = {"density", "copies", "error_barrier", "error_barrier_above_chord", "loss_barrier", "curve"}


@dataclass
class InstabilityHparams(Hparams):
    _name = "Instability Hyperparameters"
    _description = "Where the two copies start, what they train under, and how the line between them is evaluated."

    from_step: str = hparam(help="the trunk's weights at this step are trained twice from there to the end "
                                 "(the schedule and epoch resume at this step), e.g. 0ep or 500it")
    mask_run: Optional[str] = hparam(
        None, "train under the mask.pt of this run dir, given relative to the trunk's replicate directory, "
              "e.g. branch_iterative_<hash>/level_3, or to the root, e.g. train_<hash>/replicate_1/branch_"
              "iterative_<hash>/level_3 (default: dense)")
    seed: Optional[int] = hparam(None, "seed of the two data orders and of the controls (default: the replicate)")
    same_data_order: bool = hparam(False, "a null: copy B takes copy A's data order (its barrier is nondeterminism "
                                          "alone, 0 on the CPU)")
    points: int = hparam(11, "evenly spaced points from copy A (alpha 0) to copy B (alpha 1), ends included; the "
                             "paper used 30; not hashed", hashed=False)
    reset_bn_stats: bool = hparam(
        False, "recompute each point's BatchNorm statistics from one pass over the training set instead of "
               "interpolating them (default off: buffers are interpolated like the weights, as Frankle et al. "
               "did); not hashed", hashed=False)
    controls: Optional[str] = hparam(
        None, "under --mask_run: random_pruning (the mask shuffled within each layer), reinit (the mask on a fresh "
              "init), both comma-separated, or none (default: both); not hashed", is_list=True, hashed=False)

    def validate(self) -> None:
        if self.from_step is not None:
            check_step_syntax(self.from_step, "from_step")
        if self.points < 2:
            raise UserError(f"--points={self.points} must be at least 2 (the two trained copies at alpha 0 and 1)")
        if self.mask_run is not None:
            self.mask_run = parent_run.normalized_address(self.mask_run, "mask_run")
        chosen_controls(self)  # refuses an unknown name


def chosen_controls(h: InstabilityHparams) -> list[str]:
    """The controls that run: the flag's, or both under a mask; none for a dense network."""
    if h.controls is None:
        return list(CONTROLS) if h.mask_run is not None else []
    names = [name.strip() for name in h.controls.split(",") if name.strip()]
    unknown = [name for name in names if name not in (*CONTROLS, "none")]
    if unknown or not names or ("none" in names and len(names) > 1):
        raise UserError(f"--controls={h.controls} is not a choice: give random_pruning, reinit, both "
                        f"comma-separated, or none")
    if names != ["none"] and h.mask_run is None:
        raise UserError(f"--controls={h.controls} compares masks at equal sparsity and needs --mask_run: "
                        f"add a --mask_run or drop --controls")
    return [name for name in CONTROLS if name in names]


BUNDLES = {"instability": InstabilityHparams}
SEED_DEFAULT = "replicate"  # an unset --seed is the replicate itself


def seeds(branch: Branch) -> dict[str, int]:
    """Every seed this branch may use (recorded in hparams.json): the copies' data orders, the
    random pruning control's shuffle and the reinit control's initialization."""
    base = branch.seed()
    copy_a = digest_seed(base, "instability", "copy_a")
    copy_b = copy_a if branch.bundles["instability"].same_data_order else digest_seed(base, "instability", "copy_b")
    return {"copy_a_data_order": copy_a, "copy_b_data_order": copy_b,
            "random_pruning_mask": digest_seed(base, "instability", "random_pruning"),
            "reinit_init": digest_seed(base, "instability", "reinit")}


def from_step(branch: Branch) -> Step:
    return branch.trunk.step(branch.bundles["instability"].from_step, "from_step")


def run_mask(branch: Branch) -> Optional[Mask]:
    """The mask of --mask_run (on the CPU), refused unless it is a mask of this trunk's model
    (runs/parent_run.py: a run dir of this replicate, or of any trunk under the root)."""
    h = branch.bundles["instability"]
    return None if h.mask_run is None else parent_run.load_mask(branch.trunk, h.mask_run, "mask_run")


def check(branch: Branch) -> None:
    """Refuse bad flags before anything is trained or written."""
    from_step(branch)
    run_mask(branch)
    if branch.bundles["instability"].reset_bn_stats and not has_batchnorm(branch.trunk.fresh_model()):
        raise UserError(f"--reset_bn_stats recomputes BatchNorm statistics and {branch.trunk.desc.model.model_name} "
                        f"has no BatchNorm layer: drop --reset_bn_stats")


@dataclass
class Network:
    """One network whose stability is measured: where its copies live, what they start from."""

    name: str
    directory: Path
    mask: Mask
    start_weights: Callable[[], torch.nn.Module]


def networks(branch: Branch) -> list[Network]:
    """The measured network (dense, or under --mask_run), then each control at its sparsity."""
    h, trunk = branch.bundles["instability"], branch.trunk
    step, mask, used = from_step(branch), run_mask(branch), seeds(branch)
    def trunk_weights():
        return trunk.model_at(step)
    if mask is None:
        return [Network("dense", branch.dir, Mask.ones_like(trunk.fresh_model()).to("cpu"), trunk_weights)]
    found = [Network("mask", branch.dir, mask, trunk_weights)]
    for control in chosen_controls(h):
        if control == "random_pruning":
            found.append(Network(control, branch.dir / control,
                                 mask.shuffled("layerwise", used["random_pruning_mask"]), trunk_weights))
        else:
            found.append(Network(control, branch.dir / control, mask,
                                 lambda: trunk.fresh_model(seed=used["reinit_init"])))
    return found


def train_copies(branch: Branch, network: Network) -> dict[str, dict]:
    """Train (or find trained) the two copies of a network; their done.json by copy."""
    step, used = from_step(branch), seeds(branch)
    return {copy: train_masked(branch.trunk, network.directory / copy, network.start_weights(), network.mask,
                               start=step, data_order_seed=used[f"{copy}_data_order"])
            for copy in COPIES}


def settings(branch: Branch) -> dict:
    h = branch.bundles["instability"]
    return {"from_step": str(from_step(branch)), "mask_run": h.mask_run, "points": h.points,
            "reset_bn_stats": h.reset_bn_stats, "same_data_order": h.same_data_order}


def measure(branch: Branch, network: Network, done: dict[str, dict]) -> dict:
    """The curve between a network's two trained copies, and its barriers."""
    trunk = branch.trunk
    h = branch.bundles["instability"]
    used = seeds(branch)
    ends = [final_model(trunk, network.directory / copy).state_dict() for copy in COPIES]
    loss = Loss(trunk.desc.training.loss, trunk.info.task, trunk.info.num_classes)
    train_batches = (lambda: trunk.loader(True).batches(0)) if h.reset_bn_stats else None
    curve: Curve = evaluate_path(trunk.fresh_model(), *ends, h.points, trunk.loader(False), loss, train_batches)
    copies = {copy: {"dir": str(network.directory.relative_to(branch.dir) / copy),
                     "data_order_seed": used[f"{copy}_data_order"], "final_step": done[copy]["final_step"]}
              for copy in COPIES}
    return {"density": network.mask.density, "copies": copies, "error_barrier": curve.error_barrier,
            "error_barrier_above_chord": curve.error_barrier_above_chord, "loss_barrier": curve.loss_barrier,
            "curve": curve.points}


def stored_curves(branch: Branch) -> dict:
    """curve.json's networks when it was measured with these settings, else nothing."""
    try:
        stored = read_json(branch.dir / CURVE_JSON)
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("settings") != settings(branch):
        return {}
    return stored.get("networks") or {}


def measure_all(branch: Branch, trained: dict[str, tuple[Network, dict]]) -> dict:
    """Every network's curve, reusing those on disk whose copies have not changed; writes
    curve.json and curve.csv (rank 0 only)."""
    stored = stored_curves(branch)
    curves = {}
    for name, (network, done) in trained.items():
        previous = stored.get(name)
        unchanged = isinstance(previous, dict) and ENTRY_KEYS <= set(previous) and all(
            previous["copies"].get(copy, {}).get("final_step") == done[copy]["final_step"] for copy in COPIES)
        curves[name] = previous if unchanged else measure(branch, network, done)
    record = {"method": "linear mode connectivity (Frankle et al., ICML 2020)", "task": branch.trunk.info.task,
              "error": "1 - test accuracy" if branch.trunk.info.task == "classification" else "test loss (MSE)",
              "settings": settings(branch), "networks": curves}
    if curves != stored or not (branch.dir / CURVE_CSV).exists():
        write_json(record, branch.dir / CURVE_JSON)
        write_text(curve_csv(curves), branch.dir / CURVE_CSV)
    return record


def curve_csv(curves: dict) -> str:
    """One row per network and alpha (tidy: readable by pandas)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["network", "alpha", "test_error", "test_loss", "test_accuracy"])
    for name, entry in curves.items():
        for point in entry["curve"]:
            writer.writerow([name, repr(point["alpha"]), repr(point["test_error"]), repr(point["test_loss"]),
                             repr(point["test_accuracy"]) if "test_accuracy" in point else ""])
    return out.getvalue()


def print_curves(record: dict) -> None:
    names = list(record["networks"])
    entries = [record["networks"][name] for name in names]
    header = ["alpha", *[f"{name} ({entry['density']:.4f})" for name, entry in zip(names, entries)]]
    rows = [[f"{point['alpha']:.3f}", *[format_metric(entry["curve"][i]["test_error"]) for entry in entries]]
            for i, point in enumerate(entries[0]["curve"])]
    rows.append(["barrier", *[format_metric(entry["error_barrier"]) for entry in entries]])
    rows.append(["above chord", *[format_metric(entry.get("error_barrier_above_chord")) for entry in entries]])
    s = record["settings"]
    print(f"\ninstability from {s['from_step']}: test error ({record['error']}) from copy A (alpha 0) to copy B "
          f"(alpha 1); columns: network (density)")
    print_table(header, rows)
    print("barrier = max error on the line - mean of its two ends; above chord = max excess over the straight "
          "line between the ends' errors")
    if record["task"] == "classification":  # the paper's threshold is on classification error
        print(f"at most {STABLE} is stable (Frankle et al.): " + ", ".join(
            f"{name} {'stable' if entry['error_barrier'] <= STABLE else 'unstable'}"
            for name, entry in zip(names, entries)))


def summary(branch: Branch) -> dict:
    """What the branch's finished marker shows the reading commands: the barriers of the measured
    network (and of each control, prefixed by its name) and the final step of its copies."""
    networks = read_json(branch.dir / CURVE_JSON)["networks"]
    first = next(iter(networks))
    metrics = {}
    for name, entry in networks.items():
        prefix = "" if name == first else f"{name}_"
        metrics.update({f"{prefix}{key}": entry[key] for key in ("error_barrier", "error_barrier_above_chord",
                                                                 "loss_barrier")})
    final_step = networks[first]["copies"]["copy_a"]["final_step"]
    headline = [["barrier", networks[first]["error_barrier"]],
                ["above chord", networks[first]["error_barrier_above_chord"]]]
    return {"final_step": final_step, "metrics": metrics, "headline": headline, "source": CURVE_JSON}


def run(branch: Branch) -> list[list[str]]:
    trained = {network.name: (network, train_copies(branch, network)) for network in networks(branch)}
    record = branch.trunk.platform.on_primary(measure_all, branch, trained)
    print_curves(record)
    return [[f"{name} {copy[-1]}", f"{network.mask.density:.4f}",
             format_metric(done[copy]["metrics"].get("test_accuracy")), str(network.directory / copy)]
            for name, (network, done) in trained.items() for copy in COPIES]
