"""Post-hoc pruning sweeps: prune trained networks at many sparsities by many criteria, evaluate.

A swept network is its final weights and the diagonal of its Laplace posterior precision P. A
criterion turns them into a score per prunable weight (higher = kept):
  opd        theta^2 * P_ii                 (Optimal Posterior Damage)
  post_only  P_ii                           (the posterior precision alone)
  any --strategy of oneshot: random, magnitude, snipN, graspN (pruned highest first, as published),
             graspabsN, synflow
and a structure turns scores into a mask:
  unstructured   --ranking=percentile (the authors'): every parameter ranked together, OPD and
                 post_only cut strictly below the s-th percentile, the others floor(s x n);
                 --ranking=exact: exactly round(s x weights) of the conv and linear weights
                 (branches/spam/ranking.py)
  neurons|filters  remove round(s x units) of every considered non-output layer, units ranked by
                 their summed scores; the zero units are then physically removed and the
                 parameters and FLOPs of what is left are counted (pruning/compact.py)
  N:M            keep the N highest of every M consecutive inputs of each row (sparsity 1 - N/M)
The pruned network is evaluated on the test set without retraining (accuracy, NLL, Brier, ECE),
and, when fine-tuned (structured cells by default, as the authors; branches/spam/finetune.py),
after fine-tuning under its mask in its own resumable run dir.

Every evaluated cell is a JSON file under cells/ and is computed once: the sweep's sparsities and
criteria are not part of the branch hash, so asking for more of them evaluates only the new cells.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from branches.spam.calibration import evaluate_calibration
from branches.spam.finetune import Plan, finetune_plan
from branches.spam.prior_training import posterior_names
from branches.spam.ranking import RANKINGS, dense_mask, ranked_mask
from foundations.bundles import TrainingHparams
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from platforms.storage import read_json, write_json
from pruning import ScoringData, scores
from pruning.compact import compact, size_of
from pruning.mask import Mask
from pruning.nm import PATTERN, check_divisible, nm_mask, parse_pattern
from pruning.structured import STRUCTURES as UNIT_STRUCTURES
from pruning.structured_scores import prune_units_by_scores, unit_layers
from runs import run_files
from runs.branch import train_masked
from runs.trunk import Trunk
from training import checkpoint

POSTERIOR_CRITERIA = ("opd", "post_only")
PUBLISHED_COUNT = ("snip", "grasp", "graspabs")  # examples per class: 10, as SNIP and GraSP were published
DEFAULT_SPARSITIES = "20,40,60,70,75,80,85,90,95,99"
CELLS = "cells"


@dataclass
class SweepHparams(Hparams):
    _name = "SpaM Pruning Hyperparameters"
    _description = "Which post-hoc prunings are evaluated (sparsities and criteria are not hashed: more of them " \
                   "extend the same branch)."

    sparsities: str = hparam(DEFAULT_SPARSITIES, "comma-separated percentages of the considered weights (or units) "
                                                 "removed, each in [1, 100), e.g. 90 for nine tenths (a value "
                                                 "below 1 reads as a fraction and is refused)",
                             is_list=True, hashed=False)
    criteria: str = hparam("opd,magnitude,random", "comma-separated: opd | post_only | random | magnitude | snip | "
                                                   "grasp | graspabs (10 examples per class; snipN etc. for N) | "
                                                   "synflow", is_list=True, hashed=False)
    structure: str = hparam("unstructured", "unstructured | neurons | filters (whole units per layer, then "
                                            "removed and counted) | N:M, e.g. 2:4")
    ranking: str = hparam("percentile", "unstructured: percentile (the authors': every parameter, biases too; "
                                        "opd and post_only cut below the s-th percentile, the others floor(s x n)) "
                                        "| exact (conv and linear weights only, exactly round(s x n))",
                          choices=RANKINGS)
    finetune_steps: Optional[str] = hparam(None, "fine-tune each pruned network under its mask this long, e.g. 2ep; "
                                                 "0ep: never (default, as the authors: neurons and filters 10ep, "
                                                 "ResNets 5ep; unstructured and N:M none)")
    finetune_lr: Optional[float] = hparam(None, "constant learning rate of the fine-tuning (default, as the "
                                                "authors: neurons and filters opd/post_only lr x 1e-3, other "
                                                "criteria lr x 1e-4, ResNets 10x both; unstructured 0.1 x lr)")
    prune_layers_to_ignore: Optional[str] = hparam(None, "comma-separated weights never pruned (default: none)",
                                                   is_list=True)
    map_prior_precision: Optional[float] = hparam(None, "scalar prior precision of the MAP trunk's Laplace "
                                                        "(default: N x its weight decay, the prior it trained "
                                                        "under; 0 without weight decay)")
    ece_bins: int = hparam(10, "equal-width confidence bins of the ECE (10: the authors' code)")
    seed: Optional[int] = hparam(None, "seed of the random criterion and of scoring examples (default: derived "
                                       "from the replicate)")

    def validate(self) -> None:
        if self.sparsities is not None:
            percentages(self.sparsities)
        if self.criteria is not None:  # canonical: lower case, stripped, bare snip as snip10 (not hashed)
            self.criteria = ",".join(criterion_names(self.criteria))
        if self.structure is not None and self.structure not in ("unstructured", *UNIT_STRUCTURES):
            if not PATTERN.match(self.structure):
                raise UserError(f"--structure={self.structure} is unknown: use unstructured, neurons, filters or "
                                "an N:M pattern such as 2:4")
            parse_pattern(self.structure)
        if self.ece_bins is not None and self.ece_bins < 1:
            raise UserError(f"--ece_bins={self.ece_bins} must be at least 1")
        if self.map_prior_precision is not None and self.map_prior_precision < 0:
            raise UserError(f"--map_prior_precision={self.map_prior_precision} must be zero or positive")
        if self.finetune_lr is not None and not self.finetune_lr > 0:
            raise UserError(f"--finetune_lr={self.finetune_lr} must be positive")

    @property
    def is_nm(self) -> bool:
        return bool(PATTERN.match(self.structure))


def percentages(text: str) -> list[float]:
    """'20,40,99.5' -> [20.0, 40.0, 99.5]; a UserError unless each lies in [1, 100). Sparsities are
    percentages here and fractions everywhere else (--prune_fraction, --final_sparsity), so a value
    below 1, which reads as a fraction (0.9 for 90%), is refused rather than run as 0.9%."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"--sparsities has {part.strip()!r}, not a number: give percentages such as 20,90,99")
        if 0 < value < 1:
            raise UserError(f"--sparsities has {value:g}, which reads as a fraction: --sparsities is in percent, "
                            f"write {100 * value:g} for {value:g} of the weights (values in [1, 100))")
        if not 1 <= value < 100:
            raise UserError(f"--sparsities has {value:g}, outside [1, 100): give percentages such as 20,90,99")
        values.append(value)
    return values


def nm_sparsity(pattern: str) -> float:
    """The one sparsity of an N:M structure, in percent: 100 (1 - N/M)."""
    n, m = parse_pattern(pattern)
    return 100.0 * (1 - n / m)


def criterion_names(text: str) -> list[str]:
    """The criteria of a comma-separated list; bare snip, grasp and graspabs mean 10 examples per
    class, the published setting."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    names = [f"{name}10" if name in PUBLISHED_COUNT else name for name in names]
    if not names:
        raise UserError("--criteria is empty: give e.g. opd,magnitude,random")
    for name in names:
        if name not in POSTERIOR_CRITERIA:
            try:
                scores.get(name)
            except UserError as error:
                raise UserError(f"--criteria: {error} (or opd, post_only)") from None
    return names


def prunes_highest(criterion: str) -> bool:
    """GraSP as published removes the weights with the highest -w * Hg."""
    return re.fullmatch(r"grasp\d+", criterion) is not None


def finetune_training(training: TrainingHparams, plan: Plan) -> TrainingHparams:
    """The trunk's optimizer and weight decay at the plan's constant learning rate, for its steps."""
    return training.replace(training_steps=plan.steps, lr=plan.lr,
                            lr_schedule="milestones", milestone_steps=None, gamma=None, warmup_steps=None,
                            final_lr=None, weight_save_steps=None)


@dataclass
class Swept:
    """One network of the sweep: its label (spam, map), final weights and posterior precision diagonal."""

    label: str
    model: nn.Module
    precision: dict[str, torch.Tensor]
    _scores: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    def scores(self, criterion: str, dense: Mask, data: ScoringData) -> dict[str, torch.Tensor]:
        """Per-weight scores of a criterion (cached per criterion)."""
        if criterion not in self._scores:
            if criterion in POSTERIOR_CRITERIA:
                weights = dict(self.model.named_parameters())
                precision = {name: self.precision[name].to(weights[name].device) for name in dense}
                self._scores[criterion] = {
                    name: (weights[name].detach().square() * p if criterion == "opd" else p)
                    for name, p in precision.items()}
            else:
                self._scores[criterion] = scores.get(criterion)(self.model, dense, data)
        return self._scores[criterion]


def masked_copy(model: nn.Module, mask: Mask) -> nn.Module:
    """A copy of `model` with the pruned weights set to zero."""
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        parameters = dict(pruned.named_parameters())
        for name, alive in mask.items():
            parameters[name].mul_(alive.to(parameters[name].device))
    return pruned


class Sweep:
    """Evaluates cells (network x criterion x sparsity) of one branch, each once, and tabulates them."""

    def __init__(self, trunk: Trunk, directory: Path, h: SweepHparams, seed: int, ignore: list[str],
                 sparsities: Optional[list[float]] = None):
        self.trunk, self.dir, self.h, self.ignore, self.seed = trunk, Path(directory), h, ignore, seed
        self._sparsities = sparsities  # given by a branch (spam-online's final sparsity), not by --sparsities

    @property
    def data(self) -> ScoringData:
        """What data-driven criteria read: training examples, scored as one batch (as SNIP and
        GraSP were published), and the seed."""
        return ScoringData(examples=self.trunk.loader(True), seed=self.seed, input_shape=self.trunk.info.input_shape)

    # ---- what is evaluated -----------------------------------------------------------------
    def sparsities(self) -> list[float]:
        """Percentages; an N:M structure has exactly one, 100 (1 - N/M)."""
        if self.h.is_nm:
            return [nm_sparsity(self.h.structure)]
        return list(self._sparsities) if self._sparsities is not None else percentages(self.h.sparsities)

    def check(self, model: nn.Module) -> None:
        """Refuse, before anything is trained, a structure the model cannot take."""
        dense = Mask.ones_like(model)  # the weights: what the unit and N:M structures prune
        if self.h.is_nm:
            names = [n for n in dense.keys() if n not in self.ignore]
            check_divisible({name: dense[name].shape for name in names}, parse_pattern(self.h.structure)[1])
        elif self.h.structure in UNIT_STRUCTURES:
            unit_layers(dense, self.h.structure, model.output_layer_names, self.ignore)
        for criterion in criterion_names(self.h.criteria):
            self.finetune_plan(criterion)  # a UserError for a bad --finetune_steps

    @property
    def ranking(self) -> str:
        """What an unstructured cell ranks (branches/spam/ranking.py); the structures rank weights."""
        return self.h.ranking if self.h.structure == "unstructured" else "exact"

    def dense(self, model: nn.Module) -> Mask:
        return dense_mask(model, self.ranking, posterior_names(model, self.trunk.info.task))

    def finetune_plan(self, criterion: str) -> Optional[Plan]:
        training = self.trunk.desc.training
        return finetune_plan(self.h.structure, criterion, self.trunk.desc.model.model_name, training.lr,
                             self.h.finetune_steps, self.h.finetune_lr, self.trunk.iterations_per_epoch)

    def mask(self, swept: Swept, criterion: str, sparsity: float) -> Mask:
        dense = self.dense(swept.model)
        scored = swept.scores(criterion, dense, self.data)
        highest = prunes_highest(criterion)
        if self.h.is_nm:
            n, m = parse_pattern(self.h.structure)
            ranked = {name: -s if highest else s for name, s in scored.items()}
            return nm_mask(ranked, dense, n, m, self.ignore)
        if self.h.structure in UNIT_STRUCTURES:
            names = unit_layers(dense, self.h.structure, swept.model.output_layer_names, self.ignore)
            return prune_units_by_scores(scored, dense, sparsity / 100, names, highest=highest)
        return ranked_mask(scored, dense, sparsity, criterion, self.h.ranking, self.ignore, highest=highest)

    # ---- cells -----------------------------------------------------------------------------
    def cell_path(self, label: str, criterion: Optional[str], sparsity: Optional[float]) -> Path:
        name = f"{label}_dense" if criterion is None else f"{label}_{criterion}_{sparsity:g}"
        return self.dir / CELLS / f"{name}.json"

    def evaluate(self, model: nn.Module, mask: Mask) -> dict:
        """Test metrics of `model` (already masked), and its size after compaction for unit structures."""
        record = evaluate_calibration(model, self.trunk.loader(False), self.h.ece_bins)
        considered = [name for name in mask.keys() if name not in self.ignore]
        counts = mask.layer_counts()
        total = sum(counts[name]["total"] for name in considered)
        kept = sum(counts[name]["unpruned"] for name in considered)
        record.update(total=total, kept=kept, density=kept / total)
        if self.h.structure in UNIT_STRUCTURES:
            size = size_of(compact(model, self.trunk.info.input_shape), self.trunk.info.input_shape)
            record.update(parameters=size.parameters, macs=size.macs, flops=size.flops)
        return record

    def dense_cell(self, swept: Swept) -> dict:
        path = self.cell_path(swept.label, None, None)
        record = read_record(path)
        if record is None:
            record = {"model": swept.label, "criterion": None, "sparsity": 0.0,
                      **self.evaluate(swept.model, self.dense(swept.model))}
            self.trunk.platform.on_primary(write_json, record, path)
        return record

    def cell(self, swept: Swept, criterion: str, sparsity: float) -> dict:
        """One cell, evaluated once; a stored cell that lacks the fine-tuning its plan asks for is
        fine-tuned (the pruning is deterministic, so the same mask is drawn again)."""
        path = self.cell_path(swept.label, criterion, sparsity)
        record = read_record(path)
        plan = self.finetune_plan(criterion)
        if record is None or (plan is not None and "finetuned" not in record):
            mask = self.mask(swept, criterion, sparsity).to("cpu")
            pruned = masked_copy(swept.model, mask)
            record = {"model": swept.label, "criterion": criterion, "sparsity": sparsity,
                      **self.evaluate(pruned, mask)}
            if plan is not None:
                record["finetuned"] = self.finetune(pruned, mask, path.stem, plan)
            self.trunk.platform.on_primary(write_json, record, path)
        return record

    def finetune(self, pruned: nn.Module, mask: Mask, name: str, plan: Plan) -> dict:
        """Fine-tune under the mask in finetune/<name>/ (a resumable run dir); its test metrics."""
        directory = self.dir / "finetune" / name
        training = finetune_training(self.trunk.desc.training, plan)
        done = train_masked(self.trunk, directory, pruned, mask, training=training)
        final = run_files.final_step_of(done, self.trunk.iterations_per_epoch)
        tuned = copy.deepcopy(pruned)
        tuned.load_state_dict(checkpoint.load_model_state(directory / checkpoint.model_filename(final)))
        return {**evaluate_calibration(tuned, self.trunk.loader(False), self.h.ece_bins), "run": str(directory),
                "steps": plan.steps, "lr": plan.lr}

    # ---- the table -------------------------------------------------------------------------
    def run(self, networks: list[Swept]) -> list[dict]:
        """Every requested cell (computing the missing ones), dense ones first."""
        records = [self.dense_cell(swept) for swept in networks]
        for sparsity in self.sparsities():
            for swept in networks:
                for criterion in criterion_names(self.h.criteria):
                    records.append(self.cell(swept, criterion, sparsity))
        return records


def read_record(path: Path) -> Optional[dict]:
    """A cached cell, or None when it is missing or unreadable (it is then evaluated again)."""
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except (OSError, ValueError):
        run_files.say(f"{path} is unreadable; evaluating it again")
        return None
    return record if isinstance(record, dict) and "model" in record else None
