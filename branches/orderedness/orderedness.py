"""Pruning increases orderedness in weight-tied recurrent computation (Song, MOSS @ ICML 2025).

A complete layer (every unit may feed every other; one weight W shared over T steps) is trained
from the trunk's initialization and data order, and after every optimizer step a pruning rule
rewrites the whole of W, input columns included: `random` (a Bernoulli mask drawn once),
`threshold` (|w| < tau zeroed, tau frozen at the first step unless given), `topk` (the largest
fraction `keep` kept, re-ranked every step, so weights regrow), `dyn_topk` (topk with the kept
fraction falling as 1 - (1 - keep) sin^4(pi x / 2)), and the constraints `tril_damp`,
`dyn_tril_damp`, `tril_prune`, which remove weight from the lower triangle and so optimize the
metric itself. The trunk, trained the same way without a rule, is the "no pruning" row.

Orderedness of the block A = |W[:, :H+O]| (outputs first, hidden units in their best order) is
exact (dynamic programming over subsets); with the density of W it is recorded at the start and
every --track_every steps into metrics.jsonl. At the end the trained block is compared with three
nulls at its final density (branches/orderedness/nulls.py): its entries shuffled, random N(0, 1)
weights pruned by the same rule, and its own initial weights pruned the same way. Start, final,
each null, Δ and the best permutations go to orderedness.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from branches.orderedness.nulls import Measure, compare, null_pruning
from branches.orderedness.step_rules import PROGRESS_MODES, OrderednessTracker, RuleHook, progress_schedule
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.step import Step, check_step_syntax
from foundations.tables import format_metric, print_table
from models.complete import CompleteLayer
from orderedness import EXACT_LIMIT, orderedness
from platforms.storage import read_json, write_json
from pruning import rules
from pruning.mask import Mask
from runs import run_files
from runs.branch import Branch, final_model
from training.loop import train

NAME = "orderedness"
SUMMARY = "train a complete layer under a per-step pruning rule; orderedness every step, against three nulls"
RESULTS = "orderedness.json"
LAYER = "weight"  # the complete layer's one prunable weight


@dataclass
class OrderednessHparams(Hparams):
    _name = "Orderedness Hyperparameters"
    _description = "The per-step pruning rule, the progress it reads, what is tracked, and the nulls."

    rule: str = hparam(help=f"{' | '.join(rules.names())} (constraints: {', '.join(rules.constraint_names())})")
    keep: Optional[float] = hparam(None, "topk, dyn_topk: fraction of the weight kept, in (0, 1]")
    prune_fraction: Optional[float] = hparam(None, "random: fraction of the weight pruned, in [0, 1)")
    threshold: Optional[float] = hparam(
        None, "threshold: |w| below it is zeroed (default: frozen at the first step to the (n//2)-th smallest |w|)")
    damping: Optional[float] = hparam(
        None, "tril_damp, dyn_tril_damp: fraction of every strictly-lower weight removed per step, in [0, 1]")
    progress: str = hparam("epoch", "the progress x that schedules read: epoch (epoch/epochs, the paper's; at most "
                                    "(n-1)/n) or step (steps done/all steps; 1 at the last)", choices=PROGRESS_MODES)
    track_every: Optional[str] = hparam(None, "record orderedness and density every this many steps (default: 1it)")
    allow_heuristic: bool = hparam(
        False, f"beyond {EXACT_LIMIT} hidden units use the greedy + insertion heuristic (its gap is reported)")
    null_samples: int = hparam(100, "draws of the shuffled (a) and random (b) nulls")
    seed: Optional[int] = hparam(None, "seed of the random rule's mask and of the nulls (default: derived "
                                       "from the replicate)")

    def validate(self) -> None:
        if self.rule is not None:
            self.rule = self.rule.strip().lower()
            rules.get(self.rule, **self.settings(), seed=0)  # unknown rule, missing, extra or out-of-range settings
        if self.null_samples < 1:
            raise UserError(f"--null_samples={self.null_samples} must be at least 1")
        if self.track_every is not None:
            check_step_syntax(self.track_every, "track_every")

    def settings(self) -> dict[str, float]:
        """The rule's settings that were given."""
        given = {"keep": self.keep, "prune_fraction": self.prune_fraction, "threshold": self.threshold,
                 "damping": self.damping}
        return {key: value for key, value in given.items() if value is not None}


BUNDLES = {"orderedness": OrderednessHparams}


def rule_factory(branch: Branch) -> Callable[[], rules.Rule]:
    """A fresh copy of the branch's rule each call (the nulls replay it on other weights)."""
    h, rule_seed = branch.bundles["orderedness"], branch.seed()
    return lambda: rules.get(h.rule, **h.settings(), seed=rule_seed)


def measure(branch: Branch, num_outputs: int) -> Measure:
    allow = branch.bundles["orderedness"].allow_heuristic
    return lambda blocks: orderedness(blocks, num_outputs, allow_heuristic=allow)


def track_every(branch: Branch) -> int:
    text = branch.bundles["orderedness"].track_every or "1it"
    every = Step.parse(text, branch.trunk.iterations_per_epoch, "track_every").iteration
    if every < 1:
        raise UserError(f"--track_every={text} must be at least 1it")
    return every


def check(branch: Branch) -> None:
    """Refuse what makes no sense before anything is trained: a model without a complete layer,
    sigmoid states scored as logits, a block too large for exact orderedness."""
    h, trunk = branch.bundles["orderedness"], branch.trunk
    model_name = trunk.desc.model.model_name
    model = trunk.fresh_model()
    if not isinstance(model, CompleteLayer):
        raise UserError(f"the orderedness branch measures a complete layer and {model_name} has none: use "
                        f"<xor|sine>_complete_<H>, e.g. --default_hparams=xor_complete_5")
    loss = trunk.desc.training.loss or "cross_entropy"
    if trunk.info.task == "classification" and loss != "mse":
        raise UserError(f"{model_name} outputs sigmoid states in (0, 1), not logits, so --loss={loss} makes no "
                        f"sense on the classification dataset {trunk.info.name}: add --loss=mse (squared error "
                        f"to one-hot targets) or use a regression dataset (xor, sine)")
    if model.num_hidden > EXACT_LIMIT and not h.allow_heuristic:
        raise UserError(f"{model_name} has {model.num_hidden} hidden units, beyond the exact orderedness limit of "
                        f"{EXACT_LIMIT}: add --allow_heuristic (greedy + insertion search; its gap to a lower bound "
                        f"is reported as orderedness_gap)")
    track_every(branch)


def train_under_rule(branch: Branch) -> dict:
    """Train from the trunk's initialization and data order with the rule after every step;
    returns done.json (skips training when the run is finished)."""
    trunk, h = branch.trunk, branch.bundles["orderedness"]
    run_files.open_run_dir(branch.dir)
    done = run_files.finished(branch.dir, trunk.end_step)
    if done is None:
        model = trunk.initial_model()
        hooks = [RuleHook(rule_factory(branch)(), LAYER, h.progress),
                 OrderednessTracker(LAYER, model.num_units, track_every(branch), measure(branch, model.num_outputs))]
        train(model, trunk.desc.training, trunk.loader(True), trunk.loader(False), branch.dir,
              platform=trunk.platform, data_order_seed=trunk.seeds["data_order"], hooks=hooks)
        done = run_files.finished(branch.dir, trunk.end_step)
    return done


def weight_of(model: torch.nn.Module) -> torch.Tensor:
    return model.weight.detach()


def analyze(branch: Branch, done: dict) -> dict:
    """Start, final and the nulls of the branch and of its trunk (the no-pruning row)."""
    h, trunk = branch.bundles["orderedness"], branch.trunk
    initial = trunk.initial_model()
    units, outputs = initial.num_units, initial.num_outputs
    final_iteration = int(done["final_iteration"])
    progress = progress_schedule(trunk.iterations_per_epoch, trunk.end_step.iteration, h.progress)[:final_iteration]
    nulls = null_pruning(rule_factory(branch), progress)
    pruned = compare(weight_of(initial), weight_of(final_model(trunk, branch.dir)), units,
                     measure(branch, outputs), nulls, h.null_samples, branch.seed())
    unpruned = compare(weight_of(initial), weight_of(final_model(trunk, trunk.dir)), units,
                       measure(branch, outputs), null_pruning(None, []), h.null_samples, branch.seed())
    return {"rule": h.rule, "constraint": rules.get(h.rule, **h.settings(), seed=0).constraint,
            "settings": h.settings(), "progress": h.progress, "hidden": initial.num_hidden, "outputs": outputs,
            "exact": initial.num_hidden <= EXACT_LIMIT, "seed": branch.seed(), "final_iteration": final_iteration,
            "train_mse": done["metrics"].get("test_loss"), **pruned,
            "no_pruning": {"train_mse": trunk.done()["metrics"].get("test_loss"), **unpruned}}


def results(branch: Branch, done: dict) -> dict:
    """orderedness.json, computed once (and again if it is missing or unreadable)."""
    path = branch.dir / RESULTS
    try:
        stored = read_json(path)
        if isinstance(stored, dict) and stored.get("final_iteration") == done["final_iteration"]:
            return stored
    except (OSError, ValueError):
        pass
    record = analyze(branch, done)
    if branch.trunk.platform.is_primary:  # every rank computes the same record; one writes it
        write_json(record, path)
    return record


def summary(branch: Branch) -> dict:
    """The headline the reading commands show: the final orderedness and its gap to each null."""
    record = read_json(branch.dir / RESULTS)
    nulls = [[f"Δ {key}", null["delta"]] for key, null in record["nulls"].items()]
    return {"headline": [["orderedness", record["final"]["orderedness"]], *nulls]}


def summary_row(label: str, record: dict) -> list[str]:
    nulls = record["nulls"]
    cells = [label, format_metric(record["train_mse"]), f"{record['final']['density']:.3f}",
             f"{format_metric(record['start']['orderedness'])} -> {format_metric(record['final']['orderedness'])}"]
    for key in ("shuffled", "random", "init"):
        null = nulls[key]
        p = f" (p {null['p']:.3f})" if "p" in null else ""
        cells.append(f"{format_metric(null['mean'])}  Δ {null['delta']:+.4f}{p}")
    return cells


def run(branch: Branch) -> list[list[str]]:
    trunk, h = branch.trunk, branch.bundles["orderedness"]
    done = train_under_rule(branch)
    record = results(branch, done)
    if trunk.platform.is_primary:  # the final nonzero pattern
        Mask({LAYER: weight_of(final_model(trunk, branch.dir)) != 0}).save_if_changed(branch.dir)
    kind = "constraint" if record["constraint"] else "rule"
    settings = " ".join(f"{key}={value}" for key, value in record["settings"].items())
    print(f"\norderedness of the {record['hidden']}-hidden-unit block ({'exact' if record['exact'] else 'heuristic'}),"
          f" at the final density; {kind} {h.rule} {settings}")
    print_table(["run", "train MSE", "density", "orderedness start -> final", "shuffled (a)", "random (b)",
                 "init pruned (c)"],
                [summary_row("no pruning (trunk)", record["no_pruning"]), summary_row(f"{h.rule} {settings}".strip(),
                                                                                     record)])
    return [["trunk", f"{record['no_pruning']['final']['density']:.4f}", "-", str(trunk.dir)],
            [h.rule, f"{record['final']['density']:.4f}", "-", str(branch.dir)]]
