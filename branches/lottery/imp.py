"""Iterative magnitude pruning (the lottery-ticket procedure), shared by the iterative, rewinding
and reinitialize branches.

Level 0 is the trunk itself. Level L prunes `pruning_fraction` of the weights that survived level
L-1, ranked by the magnitude of level L-1's final weights (or whole units, for structured IMP),
then trains from weights that the branch chooses (the init, a rewind point, the final weights).

`--prune_strategy` ranks by any registered score instead (snipN, graspN, synflow, opd, ...: the
level's mask is prune_in_rounds of that score on level L-1's final weights under its mask, the
examples drawn from the trunk's training set as the oneshot branch draws them, seeded by the
branch's seed plus the level), with any `--prune_scope` (global, layerwise, erk, lamp).

`--structure=N:M` makes every level's mask semi-structured: level L keeps round(M * (1 - p)**L) of
every M consecutive inputs of every row (never fewer than N), so the level densities follow the
usual geometric schedule as closely as M allows until N:M is reached, and the levels after it
retrain the N:M mask unchanged. This is the decaying N:M schedule of Kao et al. 2022 (a mask that
gets sparser by whole steps of the pattern), the iterative route to N:M tickets: every level's
ticket is itself N:M, whatever --levels says (--levels is not hashed: a deeper run continues the
same branch, so "prune unstructured until the last level" could not be defined).
Each level lives in `level_<L>/`; its mask.pt is written before training and done.json after.
Under torchrun each level's mask is computed on rank 0 and broadcast; rank 0 writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from foundations import paths
from foundations.bundles import TrainingHparams
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.step import Step
from platforms.storage import write_json
from pruning import ScoringData, prune_in_rounds, scores
from pruning.mask import Mask
from pruning.nm import check_divisible, kept_per_group, parse_pattern
from pruning.rounds import check_structure, prune_to_groups
from pruning.structured import prune_units
from pruning.validate import SCOPES, check_prune_fraction, considered_layers
from runs import run_files
from runs.branch import Branch, final_model, load_mask, row, train_masked

STRUCTURES = ("unstructured", "neurons", "filters")
UNIT_NORMS = ("l1", "l2", "random")


@dataclass
class ImpHparams(Hparams):
    _name = "Iterative Pruning Hyperparameters"
    _description = "How many levels, and what each level prunes."

    levels: int = hparam(help="pruning levels after the dense trunk (level 0); not hashed: more levels continue "
                              "the same branch", hashed=False)
    pruning_fraction: float = hparam(0.2, "fraction of the remaining weights pruned at each level")
    prune_scope: str = hparam("global", "rank weights across all layers (global), within each (layerwise), "
                                        "within each at Erdős–Rényi-Kernel shares of the survivors (erk), or "
                                        "across all layers by LAMP score (lamp)", choices=SCOPES)
    prune_strategy: str = hparam("magnitude", "the score each level ranks by: random | magnitude | snipN | graspN | "
                                              "graspabsN | synflow | opd (N: examples per class)")
    structure: Optional[str] = hparam(None, "N:M, e.g. 2:4: level L keeps round(M(1-p)^L) of every M consecutive "
                                            "inputs of every row, down to N (default: unstructured)")
    prune_layers_to_ignore: Optional[str] = hparam(
        None, "comma-separated weights never pruned (default: the model's, e.g. the output layer)", is_list=True)
    prune_structure: str = hparam("unstructured", "unstructured | neurons | filters (whole units; N:M masks: "
                                                  "--structure)", choices=STRUCTURES)
    unit_norm: str = hparam("l1", "how structured pruning ranks units: l1 | l2 norm of incoming weights, or random",
                            choices=UNIT_NORMS)

    def validate(self) -> None:
        if self.levels is not None and self.levels < 0:
            raise UserError(f"--levels={self.levels} must be zero or positive")
        check_prune_fraction(self.pruning_fraction, "pruning_fraction")
        if self.prune_strategy is not None:  # canonical before hashing: SNIP10 and snip10 are one run
            self.prune_strategy = scores.canonical(self.prune_strategy)
        if self.structure is not None:
            n, m = check_structure(self.structure, None, self.prune_scope)
            self.structure = f"{n}:{m}"
            if self.prune_structure != "unstructured":
                raise UserError(f"--structure={self.structure} and --prune_structure={self.prune_structure} both "
                                f"say what a level removes: give one of them")
        if self.prune_structure != "unstructured" and self.prune_strategy != "magnitude":
            raise UserError(f"--prune_structure={self.prune_structure} ranks whole units by --unit_norm: "
                            f"leave --prune_strategy={self.prune_strategy} out")


def cells(branch: Branch, options: dict) -> list[str]:
    """The levels a request with these unhashed options finishes: level_0 .. level_<levels>
    (runs/branch.py: a marker of more levels covers fewer)."""
    return [f"level_{level}" for level in range(int(options["imp"]["levels"]) + 1)]


def merge_options(branch: Branch, stored: dict, requested: dict) -> dict:
    """The options of the union of two finished requests: the deeper one's levels."""
    levels = max(int(stored.get("imp", {}).get("levels", 0)), int(requested["imp"]["levels"]))
    return {**requested, "imp": {**requested["imp"], "levels": levels}}


# What a level trains from: (model, start step or None for 0, training hparams or None for the trunk's).
LevelStart = Callable[[int, Mask, torch.nn.Module], tuple[torch.nn.Module, Optional[Step], Optional[TrainingHparams]]]


def check(branch: Branch) -> None:
    """Refuse, before anything is trained, layers to ignore that are unknown and N:M layers whose
    rows are not whole groups of M."""
    h = branch.bundles["imp"]
    ignore = branch.layers_to_ignore(h.prune_layers_to_ignore)
    if h.structure is not None:
        names = considered_layers(branch.trunk.prunable_layer_names, ignore)
        state = branch.trunk.fresh_model().state_dict()
        check_divisible({name: state[name].shape for name in names}, parse_pattern(h.structure)[1])


def scoring_data(branch: Branch, level: int) -> ScoringData:
    """What a data-driven score of a level reads: the trunk's training examples, unaugmented, as
    the oneshot branch reads them (in batches of the training batch size), seeded per level."""
    trunk = branch.trunk
    return ScoringData(examples=trunk.loader(True), seed=branch.seed() + level, input_shape=trunk.info.input_shape,
                       batch_size=trunk.desc.dataset.batch_size, weight_decay=trunk.desc.training.weight_decay)


def next_mask(branch: Branch, h: ImpHparams, level: int, trained: torch.nn.Module, mask: Mask) -> Mask:
    ignore = branch.layers_to_ignore(h.prune_layers_to_ignore)
    strategy = h.prune_strategy or "magnitude"
    data = None if strategy == "magnitude" else scoring_data(branch, level)
    if h.structure is not None:
        n, m = parse_pattern(h.structure)
        kept = kept_per_group(n, m, (1 - h.pruning_fraction) ** level)
        return mask if kept == m else prune_to_groups(trained, strategy, kept, m, data=data, mask=mask,
                                                      layers_to_ignore=ignore)
    if h.prune_structure == "unstructured":
        return prune_in_rounds(trained, strategy, h.pruning_fraction, 1, data=data, mask=mask, scope=h.prune_scope,
                               layers_to_ignore=ignore)
    return prune_units(trained, mask, h.pruning_fraction, structure=h.prune_structure, norm=h.unit_norm,
                       seed=branch.replicate * 1000 + level, layers_to_ignore=ignore)


def write_level_zero(branch: Branch, directory: Path) -> dict:
    """level_0 is the trunk: a dense mask and the trunk's final results, pointing at the trunk
    (written by rank 0; every rank returns once it is on disk)."""
    return branch.trunk.platform.on_primary(_write_level_zero, branch, directory)


def _write_level_zero(branch: Branch, directory: Path) -> dict:
    trunk = branch.trunk
    Mask.ones_like(trunk.fresh_model()).save_if_changed(directory)
    done = run_files.read_done(directory, trunk.end_step)
    if done is None:
        done = {**trunk.done(), "source": str(trunk.dir)}
        write_json(done, directory / paths.DONE)
    return done


def run_levels(branch: Branch, h: ImpHparams, start_of_level: LevelStart) -> list[list[str]]:
    """Levels 0..h.levels, each pruned from the one before; returns the summary rows.

    A finished level is read back, never retrained; a damaged mask is recomputed from the level
    before (masks are deterministic), a level with damaged final weights is trained again."""
    trunk = branch.trunk
    platform = trunk.platform
    done = write_level_zero(branch, paths.level_dir(branch.dir, 0))
    mask = Mask.load(paths.level_dir(branch.dir, 0))
    rows = [row(0, mask, done, trunk.dir)]
    trained_dir = trunk.dir
    for level in range(1, h.levels + 1):
        directory = paths.level_dir(branch.dir, level)
        platform.on_primary(run_files.open_run_dir, directory)
        stored = load_mask(directory)
        done = platform.on_primary(run_files.finished, directory, trunk.end_step) if stored is not None else None
        if stored is not None and done is not None:
            mask = stored
            platform.on_primary(mask.save_if_changed, directory)  # rewrites a damaged sparsity.json
        else:
            previous = final_model(trunk, trained_dir)
            pruned = mask.to(platform.device)
            mask = stored or platform.on_primary(lambda: next_mask(branch, h, level, previous, pruned).to("cpu"))
            model, start, training = start_of_level(level, mask, previous)
            done = train_masked(trunk, directory, model, mask, start=start, training=training)
        rows.append(row(level, mask, done, directory))
        trained_dir = directory
    return rows
