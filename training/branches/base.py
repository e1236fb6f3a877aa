"""What every branch shares: flags, finding (or training) the trunk, its own hashed directory,
and training a masked network in a sub-directory.

A branch module defines NAME, SUMMARY, BUNDLES (its hparam dataclasses, which become flags and
are hashed under the trunk) and `run(branch) -> rows`, and sets `main = branch_main(...)`.

When `run` returns, the branch directory's done.json records the table and the values of the
options left out of the hash (`--levels`), so `branch_finished` can tell whether a command line
asks for more than what is on disk. Under torchrun, every rank runs the branch; files are
written, repaired and judged by rank 0 (`on_primary`), and masks are rank 0's, broadcast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

import models.registry as models_registry
from foundations.desc import hash_bundles, write_hparams
from foundations.errors import UserError
from foundations.hparams import Hparams
from foundations.step import Step
from foundations.bundles import TrainingHparams
from platforms.distributed import current_world
from platforms.lock import run_lock
from platforms.platform import Platform
from platforms.storage import read_json, write_json
from pruning.mask import Mask
from pruning.validate import considered_layers
from training import checkpoint, run_files
from training.arguments import build_parser, trunk_desc
from training.hooks import Hook
from training.loop import train
from training.masking import MaskHook
from training.report import format_metric, print_table
from training.trunk import Trunk

ROW_HEADER = ["level", "density", "test accuracy", "run"]


@dataclass
class Branch:
    """One branch run: its trunk, its hparams bundles, and its directory."""

    name: str
    trunk: Trunk
    bundles: dict[str, Hparams]

    @property
    def hash(self) -> str:
        return hash_bundles(self.bundles, extra=self.trunk.desc.hash)

    @property
    def dir(self) -> Path:
        return self.trunk.dir.parent / f"branch_{self.name}_{self.hash}"

    @property
    def replicate(self) -> int:
        return self.trunk.replicate

    def layers_to_ignore(self, flag_value: Optional[str], model_default: bool = True) -> list[str]:
        """The flag's comma-separated names; when the flag is not given, the model's default
        (OpenLTH's: LeNet and VGG keep their output layer) or, without `model_default`, none."""
        if flag_value is None:
            defaults = models_registry.default_hparams(self.trunk.desc.model.model_name) if model_default else {}
            flag_value = defaults.get("pruning", {}).get("prune_layers_to_ignore", "")
        names = [name.strip() for name in flag_value.split(",") if name.strip()]
        considered_layers(self.trunk.prunable_layer_names, names)  # a UserError for an unknown name
        return names

    def prepare(self, seeds: dict[str, int]) -> None:
        """Train the trunk if needed, then write (or check) this branch's hparams.json."""
        self.trunk.run(wait_for_lock=True)
        self.trunk.platform.on_primary(self._write_hparams, seeds)

    def _write_hparams(self, seeds: dict[str, int]) -> None:
        run_files.open_run_dir(self.dir)
        write_hparams(self.dir, {**self.trunk.desc.bundles(), **self.bundles}, kind=f"branch_{self.name}",
                      replicate=self.replicate, seeds=seeds, parent_hash=self.trunk.desc.hash, run_hash=self.hash)

    def unhashed_options(self) -> dict:
        """The values of the options that are not hashed (e.g. --levels), as JSON stores them."""
        return json.loads(json.dumps({key: bundle.unhashed_values() for key, bundle in self.bundles.items()}))


def write_branch_done(branch: Branch, rows: list[list[str]]) -> None:
    """Mark the branch finished: its table and unhashed options, under "branch" in its done.json
    (merged into the training done.json where the branch dir is itself a training run)."""
    path = branch.dir / run_files.DONE
    try:
        done = read_json(path)
    except (OSError, ValueError):
        done = {}
    done = done if isinstance(done, dict) else {}
    write_json({**done, "branch": {"header": ROW_HEADER, "rows": rows, "options": branch.unhashed_options()}}, path)


def branch_finished(branch: Branch) -> bool:
    """Whether this branch ran to the end with these very unhashed options (reads only):
    `--levels=3` after `--levels=2` is not finished."""
    try:
        done = read_json(branch.dir / run_files.DONE)
    except (OSError, ValueError):
        return False
    marker = done.get("branch") if isinstance(done, dict) else None
    return isinstance(marker, dict) and marker.get("options") == branch.unhashed_options()


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
    recomputes it: every mask here is a deterministic function of its inputs). Under torchrun,
    rank 0's reading."""
    return current_world().on_primary(_read_mask, directory)


def _read_mask(directory: Path) -> Optional[Mask]:
    if not Mask.exists(directory):
        return None
    try:
        return Mask.load(directory)
    except Exception:  # truncated or foreign file
        run_files.say(f"{Path(directory) / 'mask.pt'} is unreadable; recomputing the mask")
        return None


def train_masked(trunk: Trunk, out_dir: Path, model: torch.nn.Module, mask: Mask, *,
                 start: Optional[Step] = None, training: Optional[TrainingHparams] = None,
                 hooks: Sequence[Hook] = (), data_order_seed: Optional[int] = None) -> dict:
    """Train `model` under `mask` in `out_dir` (mask.pt first, done.json last); skip if done.
    Returns done.json. `hooks` run after the mask's; `data_order_seed` defaults to the trunk's.
    Under torchrun every rank trains under rank 0's mask."""
    out_dir = Path(out_dir)
    platform = trunk.platform
    mask = platform.broadcast(mask.to("cpu"))
    training = training or trunk.desc.training
    end = Step.parse(training.training_steps, trunk.iterations_per_epoch, "training_steps")
    done = platform.on_primary(_open_masked_run, out_dir, mask, end)
    if done is None:
        seed = trunk.seeds["data_order"] if data_order_seed is None else data_order_seed
        train(model, training, trunk.loader(True), trunk.loader(False), out_dir, platform=platform,
              data_order_seed=seed, start=start, hooks=[MaskHook(mask.to(platform.device)), *hooks])
        done = platform.on_primary(run_files.finished, out_dir, end)
    return done


def _open_masked_run(out_dir: Path, mask: Mask, end: Step) -> Optional[dict]:
    run_files.open_run_dir(out_dir)
    mask.save_if_changed(out_dir)
    return run_files.finished(out_dir, end)


def row(level: object, mask: Mask, done: dict, run_dir: Path) -> list[str]:
    return [str(level), f"{mask.density:.4f}", format_metric(done["metrics"].get("test_accuracy")), str(run_dir)]


def locate(name: str, summary: str, bundles: dict[str, type[Hparams]], argv: list[str],
           with_devices: bool = True) -> tuple[Branch, argparse.Namespace]:
    """Parse a branch's argv into its Branch (trunk, bundles, directory) without training or
    writing anything; reading commands use it to find the run dirs a command would make. A
    branch module's `trunk_of(branch) -> Trunk` picks the trunk it grows from when that is not the
    command's own (chaos-causality's trunk holds its risk split out of training).
    `with_devices=False` only locates (no device checks, no torchrun): for planning elsewhere."""
    parser = build_parser(f"open_prune.py branch {name}", summary, argv, extra_bundles=bundles)
    args = parser.parse_args(argv)
    if args.replicate < 0:
        raise UserError(f"--replicate={args.replicate} must be zero or positive")
    platform = Platform.from_args(args) if with_devices else Platform.for_locating(args)
    trunk = Trunk(trunk_desc(args), args.replicate, platform)
    branch = Branch(name, trunk, {key: bundle.from_args(args) for key, bundle in bundles.items()})
    from training.branches import registry  # a branch module may grow from a variant of the command's trunk
    module = registry.all_branches().get(name)
    if module is not None and hasattr(module, "trunk_of"):
        branch.trunk = module.trunk_of(branch)
    return branch, args


def branch_main(name: str, summary: str, bundles: dict[str, type[Hparams]],
                run: Callable[[Branch], list[list[str]]],
                seeds: Callable[[Branch], dict[str, int]] = lambda branch: {},
                check: Callable[[Branch], None] = lambda branch: None) -> Callable[[list[str]], int]:
    """The `main(argv)` of a branch: parse, locate, print the location or run and print a table.
    `check` validates flags against the trunk before anything is trained or written."""

    def main(argv: list[str]) -> int:
        branch, args = locate(name, summary, bundles, argv)
        check(branch)
        if args.display_output_location:
            print(branch.dir)
            return 0
        branch.prepare(seeds(branch))
        with run_lock(branch.dir, wait=args.wait_for_lock):
            rows = run(branch)
            branch.trunk.platform.on_primary(write_branch_done, branch, rows)
        print(f"\nbranch {name}: {branch.dir}")
        print_table(ROW_HEADER, rows)
        return 0

    return main
