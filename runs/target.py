"""One `train` or `branch <name>` command line: its flags, the runs it names, whether they are done,
and running it. `branch`, `submit`, `report`, `runs` and `tree` all go through a Target, so a
command line means the same run everywhere.

Locating parses exactly as the command does (the same parser, the same `--default_hparams`) and
computes the run directory without training, writing, touching a device or joining torchrun.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional, Union

from foundations import paths
from foundations.bundles import TRUNK_BUNDLES
from foundations.cli import Parser
from foundations.errors import UserError
from foundations.hparams import Hparams
from platforms.platform import Platform
from runs.branch import Branch, branch_finished, run_branch
from runs.flags import build_parser, trunk_desc
from runs.registry import BRANCHES
from runs.trunk import Trunk, run_trunk

TRAIN_SUMMARY = "train a dense network (the trunk)"


@dataclass(frozen=True)
class Located:
    """Where one run of a command lives."""

    run_dir: Path                  # the trunk's or the branch's directory
    trunk_dir: Path
    root: Path
    replicate: int
    bundles: dict[str, Hparams]    # the branch's own bundles ({} for a trunk)
    levels: Optional[list[int]]    # 0..L for a branch with levels, else None
    done: bool                     # finished, with these very unhashed options (reads only)

    def result_dirs(self) -> list[tuple[Optional[int], Path]]:
        """(level, directory holding done.json) of every result of this run."""
        if self.levels is None:
            return [(None, self.run_dir)]
        return [(level, paths.level_dir(self.run_dir, level)) for level in self.levels]


@dataclass(frozen=True)
class Target:
    words: tuple[str, ...]                      # ("train",) or ("branch", "<name>")
    summary: str
    bundles: dict[str, type[Hparams]]           # the branch's own bundle classes ({} for train)
    module: Optional[ModuleType] = None         # the branch module (None for train)

    @property
    def name(self) -> str:
        return self.words[-1]

    @property
    def prog(self) -> str:
        return f"open_prune.py {' '.join(self.words)}"

    @property
    def has_levels(self) -> bool:
        return "imp" in self.bundles

    def all_bundles(self) -> dict[str, type[Hparams]]:
        return {**TRUNK_BUNDLES, **self.bundles}

    def parser(self, argv: Optional[list[str]] = None) -> Parser:
        """The command's parser (with argv's `--default_hparams` filled in; plain defaults without)."""
        return build_parser(self.prog, self.summary, argv or [], extra_bundles=self.bundles)

    def parse(self, argv: list[str], with_devices: bool = True
              ) -> tuple[Union[Trunk, Branch], argparse.Namespace]:
        """The trunk or branch one command line names, built without training or writing anything.
        `with_devices=False` only locates: no device checks, no torchrun."""
        args = self.parser(argv).parse_args(argv)
        if args.replicate < 0:
            raise UserError(f"--replicate={args.replicate} must be zero or positive")
        platform = Platform.from_args(args) if with_devices else Platform.for_locating(args)
        trunk = Trunk(trunk_desc(args), args.replicate, platform)
        if self.module is None:
            return trunk, args
        branch = Branch(self.name, trunk, {key: bundle.from_args(args) for key, bundle in self.bundles.items()},
                        self.module)
        if hasattr(self.module, "trunk_of"):  # a branch may grow from a variant of the command's trunk
            branch.trunk = self.module.trunk_of(branch)
        return branch, args

    def locate(self, argv: list[str]) -> Located:
        """Parse one command line of this target and say where its run lives and whether it is done."""
        run, _ = self.parse(argv, with_devices=False)
        if isinstance(run, Trunk):
            return Located(run.dir, run.dir, run.platform.root, run.replicate, {}, None, run.is_done)
        levels = list(range(run.bundles["imp"].levels + 1)) if self.has_levels else None
        return Located(run.dir, run.trunk.dir, run.trunk.platform.root, run.replicate, dict(run.bundles), levels,
                       branch_finished(run))

    def run(self, argv: list[str]) -> int:
        """Run the command (its flags in argv) in this process (with `--stack`, its independent
        trainings as stacks: runs/stack_plan.py)."""
        run, args = self.parse(argv)
        platform = run.platform if isinstance(run, Trunk) else run.trunk.platform
        command = (lambda: run_trunk(run, args)) if isinstance(run, Trunk) else (lambda: run_branch(run, args))
        if platform.stack is None:
            return command()
        from runs.stack_plan import run_with_stacks  # it runs commands itself (run_here)
        return run_with_stacks(command, platform)


def train_target() -> Target:
    return Target(("train",), TRAIN_SUMMARY, {})


def branch_target(name: str) -> Target:
    """The target of `branch <name>`: imports that branch's module alone."""
    module = BRANCHES.get(name)
    return Target(("branch", name), module.SUMMARY, dict(module.BUNDLES), module)


def parse_target(argv: list[str], command: str) -> tuple[Target, list[str]]:
    """`train ...` or `branch <name> ...` -> the target and its flags; `command` is the command
    that reads it (report, submit), for the error."""
    if argv and argv[0] == "train":
        return train_target(), argv[1:]
    if argv and argv[0] == "branch":
        if len(argv) < 2 or argv[1].startswith("-"):
            raise UserError(f"{command} branch needs the branch's name, one of {', '.join(BRANCHES.names())}: "
                            f"e.g. `{command} branch iterative --levels=10 ...`")
        return branch_target(argv[1]), argv[2:]
    given = repr(argv[0]) if argv else "nothing"
    raise UserError(f"{command} takes a command line: `{command} train ...` or `{command} branch <name> ...`, "
                    f"not {given}")


def run_here(argv: list[str]) -> int:
    """Run one command line (`train ...` or `branch <name> ...`) in this process, as
    `open_prune.py <argv>` would."""
    target, flags = parse_target(argv, "run")
    return target.run(flags)
