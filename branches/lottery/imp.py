"""Iterative magnitude pruning (the lottery-ticket procedure), shared by the iterative, rewinding
and reinitialize branches.

Level 0 is the trunk itself. Level L prunes `pruning_fraction` of the weights that survived level
L-1, ranked by the magnitude of level L-1's final weights (or whole units, for structured IMP),
then trains from weights that the branch chooses (the init, a rewind point, the final weights).
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
from pruning import prune_in_rounds
from pruning.mask import Mask
from pruning.structured import prune_units
from pruning.validate import SCOPES, check_prune_fraction
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
    prune_scope: str = hparam("global", "rank weights across all layers (global), within each (layerwise), or "
                                        "within each at Erdős–Rényi-Kernel shares of the survivors (erk)",
                              choices=SCOPES)
    prune_layers_to_ignore: Optional[str] = hparam(
        None, "comma-separated weights never pruned (default: the model's, e.g. the output layer)", is_list=True)
    prune_structure: str = hparam("unstructured", "unstructured | neurons | filters", choices=STRUCTURES)
    unit_norm: str = hparam("l1", "how structured pruning ranks units: l1 | l2 norm of incoming weights, or random",
                            choices=UNIT_NORMS)

    def validate(self) -> None:
        if self.levels is not None and self.levels < 0:
            raise UserError(f"--levels={self.levels} must be zero or positive")
        check_prune_fraction(self.pruning_fraction, "pruning_fraction")


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


def next_mask(branch: Branch, h: ImpHparams, level: int, trained: torch.nn.Module, mask: Mask) -> Mask:
    ignore = branch.layers_to_ignore(h.prune_layers_to_ignore)
    if h.prune_structure == "unstructured":
        return prune_in_rounds(trained, "magnitude", h.pruning_fraction, 1, mask=mask, scope=h.prune_scope,
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
