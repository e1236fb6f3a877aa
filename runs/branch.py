"""What every branch shares: its hashed directory beside the trunk, its seed, training a masked
network in a sub-directory, and the run of a branch command from start to finished marker.

A branch module (see runs/registry.py) declares NAME, SUMMARY, BUNDLES and `run(branch) -> rows`.
When `run` returns, `branch_done.json` records the rows and the values of the options left out of
the hash (`--levels`), so `branch_finished` can tell whether a command line asks for more than
what is on disk; done.json stays the training loop's alone. Those options only ever add: a module
that declares `cells(branch, options)` (the results a request produces, as names: IMP's levels,
spam's criterion x sparsity cells) and `merge_options(branch, stored, requested)` keeps in its
marker the union of every finished request, so a smaller request is finished and leaves the
marker whole; without them, another value of an option is another result (the marker is the
latest request's). Under torchrun, every rank runs the branch; files are written, repaired and
judged by rank 0 (`on_primary`), and masks are rank 0's, broadcast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional, Sequence

import torch

import models.registry as models_registry
from foundations import paths
from foundations.bundles import TrainingHparams
from foundations.desc import hash_bundles
from foundations.hparams import Hparams
from foundations.seeds import derive_seed
from foundations.step import Step
from foundations.tables import format_metric, print_table
from platforms.distributed import current_world
from platforms.environment import describe
from platforms.lock import run_lock
from platforms.storage import read_json, write_json
from pruning.mask import Mask
from pruning.validate import considered_layers
from runs import run_files
from runs.hparams_file import write_hparams
from runs.trunk import Trunk
from training import checkpoint
from training.hooks import Hook
from training.loop import train
from training.masking import MaskHook

ROW_HEADER = ["level", "density", "test accuracy", "run"]  # a branch with levels (--levels)
NETWORK_HEADER = ["network", "density", "test accuracy", "run"]  # a row per network it trained


@dataclass
class Branch:
    """One branch run: its trunk, its hparams bundles, its directory, and the module that runs it."""

    name: str
    trunk: Trunk
    bundles: dict[str, Hparams]
    module: Optional[ModuleType] = None

    @property
    def hash(self) -> str:
        """The bundles' digest with the parent's hash (and the module's DEFAULTS_VERSION, where it
        has one: see runs/registry.py)."""
        version = getattr(self.module, "DEFAULTS_VERSION", None)
        extra = self.trunk.desc.hash if version is None else f"{self.trunk.desc.hash}|defaults {version}"
        return hash_bundles(self.bundles, extra=extra)

    @property
    def dir(self) -> Path:
        return paths.branch_dir(self.trunk.dir, self.name, self.hash)

    @property
    def replicate(self) -> int:
        return self.trunk.replicate

    def seed(self) -> int:
        """The seed of the branch's own randomness (random scores, shuffles, controls, nulls): its
        `--seed` when given, else derived from the replicate, or the replicate itself where the
        branch's module says SEED_DEFAULT = "replicate" (as its paper's code did)."""
        given = [bundle.seed for bundle in self.bundles.values() if hasattr(bundle, "seed")]
        if given and given[0] is not None:
            return given[0]
        if getattr(self.module, "SEED_DEFAULT", "mask") == "replicate":
            return self.replicate
        return derive_seed(self.replicate, "mask")

    def recorded_seeds(self) -> dict[str, int]:
        """The seeds hparams.json records: the module's `seeds(branch)`, else the seed under the
        key of the bundle that has a --seed (nothing for a branch without randomness of its own)."""
        if hasattr(self.module, "seeds"):
            return self.module.seeds(self)
        return {key: self.seed() for key, bundle in self.bundles.items() if hasattr(bundle, "seed")}

    def layers_to_ignore(self, flag_value: Optional[str], model_default: bool = True) -> list[str]:
        """The flag's comma-separated names; when the flag is not given, the model's default
        (OpenLTH's: LeNet and VGG keep their output layer) or, without `model_default`, none."""
        if flag_value is None:
            desc = self.trunk.desc
            defaults = models_registry.default_hparams(desc.model.model_name, desc.dataset.dataset_name) \
                if model_default else {}
            flag_value = defaults.get("pruning", {}).get("prune_layers_to_ignore", "")
        names = [name.strip() for name in flag_value.split(",") if name.strip()]
        considered_layers(self.trunk.prunable_layer_names, names)  # a UserError for an unknown name
        return names

    def prepare(self) -> None:
        """Train the trunk if needed, then write (or check) this branch's hparams.json."""
        self.trunk.run(wait_for_lock=True)
        self.trunk.platform.on_primary(self._write_hparams)

    def _write_hparams(self) -> None:
        run_files.open_run_dir(self.dir)
        platform = self.trunk.platform
        write_hparams(self.dir, {**self.trunk.desc.bundles(), **self.bundles}, kind=f"branch_{self.name}",
                      environment=lambda: describe(platform.device, platform.world),
                      replicate=self.replicate, seeds=self.recorded_seeds(), parent_hash=self.trunk.desc.hash,
                      run_hash=self.hash)

    def unhashed_options(self) -> dict:
        """The values of the options that are not hashed (e.g. --levels), as JSON stores them."""
        return json.loads(json.dumps({key: bundle.unhashed_values() for key, bundle in self.bundles.items()}))


def run_branch(branch: Branch, args: argparse.Namespace) -> int:
    """`open_prune.py branch <name>`: check the flags against the trunk before anything is trained
    or written, then train the trunk if needed, run the branch and mark it finished. A module's
    `check_run(branch)` refuses, after `--display_output_location` (the run still has a place) and
    before anything is written, a run that would be void (spam whose training ends before its
    first prior update)."""
    if hasattr(branch.module, "check"):
        branch.module.check(branch)
    if args.display_output_location:
        print(branch.dir)
        return 0
    if hasattr(branch.module, "check_run"):  # a run that is well defined (it can be located) but would be void
        branch.module.check_run(branch)
    branch.prepare()
    with run_lock(branch.dir, wait=args.wait_for_lock):
        rows = branch.module.run(branch)
        branch.trunk.platform.on_primary(write_branch_done, branch, rows)
    print(f"\nbranch {branch.name}: {branch.dir}")
    print_table(row_header(branch), rows)
    return 0


def write_branch_done(branch: Branch, rows: list[list[str]]) -> None:
    """The branch's finished marker, written last: its rows, its unhashed options and, from a
    module's `summary(branch)`, what the reading commands show of a result that is not a training
    run's (instability's barriers). Results never shrink: a marker that already covers this
    request (see `branch_finished`) is left as it is, and one that covers part of it is merged
    (the module's `merge_options`; the union of `cells`; rows by level, the new ones first)."""
    requested = branch.unhashed_options()
    marker = read_marker(branch)
    stored_cells = marker_cells(branch, marker) if marker is not None else None
    cells = requested_cells(branch, requested)
    if stored_cells is not None and cells is not None:
        if marker.get("options") != requested and cells <= stored_cells:
            return  # a smaller request: what is on disk is more, and stays
    summary = branch.module.summary(branch) if hasattr(branch.module, "summary") else {}
    options, extra = requested, {}
    if cells is not None:
        if stored_cells is not None:
            merge = getattr(branch.module, "merge_options", None)
            options = merge(branch, marker["options"], requested) if merge else requested
            cells |= stored_cells
            new = {str(r[0]) for r in rows}
            rows = [*rows, *(r for r in marker.get("rows", []) if isinstance(r, list) and r and str(r[0]) not in new)]
        extra = {"cells": sorted(cells)}
    write_json({**summary, "header": row_header(branch), "rows": rows, "options": options, **extra},
               branch.dir / paths.BRANCH_DONE)


def row_header(branch: Branch) -> list[str]:
    """The header of a branch's summary table: its module's row_header(branch) or ROW_HEADER, else by
    whether it has levels."""
    if hasattr(branch.module, "row_header"):
        return branch.module.row_header(branch)
    return getattr(branch.module, "ROW_HEADER", ROW_HEADER if "imp" in branch.bundles else NETWORK_HEADER)


def read_marker(branch: Branch) -> Optional[dict]:
    """The branch's branch_done.json, or None when it is missing or unreadable."""
    try:
        marker = read_json(branch.dir / paths.BRANCH_DONE)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("options"), dict) else None


def requested_cells(branch: Branch, options: dict) -> Optional[set[str]]:
    """The results these unhashed options ask for, as names (the module's `cells`), or None for a
    module without `cells` (another value is then another result)."""
    cells = getattr(branch.module, "cells", None)
    return None if cells is None else {str(cell) for cell in cells(branch, options)}


def marker_cells(branch: Branch, marker: dict) -> Optional[set[str]]:
    """What a marker says is finished: its `cells`, else (a marker written before they were kept)
    those of its options; None for a module without `cells`, or a marker that says nothing readable."""
    if getattr(branch.module, "cells", None) is None:
        return None
    if isinstance(marker.get("cells"), list):
        return {str(cell) for cell in marker["cells"]}
    try:
        return requested_cells(branch, marker["options"])
    except Exception:  # options of another version, or damaged: nothing is known to be finished
        return None


def branch_finished(branch: Branch) -> bool:
    """Whether the branch's finished marker covers this request (reads only): the same unhashed
    options, or, for a module with `cells`, a request whose cells are all among the marker's
    (`--levels=1` after `--levels=2` is finished; `--levels=3` after `--levels=2` is not)."""
    marker = read_marker(branch)
    if marker is None:
        return False
    requested = branch.unhashed_options()
    if marker.get("options") == requested:
        return True
    stored = marker_cells(branch, marker)
    return stored is not None and requested_cells(branch, requested) <= stored


def final_model(trunk: Trunk, run_dir: Path) -> torch.nn.Module:
    """The weights at the end of training of a finished run in `run_dir` (its done.json says
    which step that is: a run may end early)."""
    done = trunk.platform.on_primary(run_files.read_done, run_dir, trunk.end_step)
    final = run_files.final_step_of(done, trunk.iterations_per_epoch) if done else trunk.end_step
    model = trunk.fresh_model()
    model.load_state_dict(checkpoint.load_model_state(run_dir / checkpoint.model_filename(final)))
    return model


def load_mask(directory: Path) -> Optional[Mask]:
    """The mask saved in `directory`, or None when there is none or it is damaged (the caller
    recomputes it). Under torchrun, rank 0's reading."""
    return current_world().on_primary(Mask.load_if_readable, directory)


def train_masked(trunk: Trunk, out_dir: Path, model: torch.nn.Module, mask: Mask, *,
                 start: Optional[Step] = None, training: Optional[TrainingHparams] = None,
                 hooks: Sequence[Hook] = (), data_order_seed: Optional[int] = None,
                 mask_hook: Optional[Hook] = None) -> dict:
    """Train `model` under `mask` in `out_dir` (mask.pt first, done.json last); skip if done.
    Returns done.json. `hooks` run after the mask's; `data_order_seed` defaults to the trunk's.
    `mask_hook` replaces the static MaskHook(mask) for a mask that changes during training (the
    sparse-training branches; mask.pt is then the mask training starts from). Under torchrun
    every rank trains under rank 0's mask."""
    out_dir = Path(out_dir)
    platform = trunk.platform
    mask = platform.broadcast(mask.to("cpu"))
    training = training or trunk.desc.training
    end = Step.parse(training.training_steps, trunk.iterations_per_epoch, "training_steps")
    done = platform.on_primary(_open_masked_run, out_dir, mask, end)
    if done is None:
        seed = trunk.seeds["data_order"] if data_order_seed is None else data_order_seed
        train(model, training, trunk.loader(True), trunk.loader(False), out_dir, platform=platform,
              data_order_seed=seed, start=start, hooks=[mask_hook or MaskHook(mask.to(platform.device)), *hooks])
        done = platform.on_primary(run_files.finished, out_dir, end)
    return done


def _open_masked_run(out_dir: Path, mask: Mask, end: Step) -> Optional[dict]:
    run_files.open_run_dir(out_dir)
    mask.save_if_changed(out_dir)
    return run_files.finished(out_dir, end)


def row(level: object, mask: Mask, done: dict, run_dir: Path) -> list[str]:
    return [str(level), f"{mask.density:.4f}", format_metric(done["metrics"].get("test_accuracy")), str(run_dir)]
