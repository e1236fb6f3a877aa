"""What a report is about: `train` or `branch <name>`, and where one command line's runs live.

A target parses a command line exactly as its command would (the same parser, the same
`--default_hparams`) and computes the run directory from it, without training or writing
anything: `training.branches.base.locate` for branches, `TrainDesc.run_path` for trunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional

from foundations.cli import Parser
from foundations.errors import UserError
from foundations.hparams import Hparams
from training.arguments import TRUNK_BUNDLES, build_parser, trunk_desc


@dataclass(frozen=True)
class Located:
    """Where one run of a command lives."""

    run_dir: Path                  # the trunk's or the branch's directory
    trunk_dir: Path
    root: Path
    replicate: int
    bundles: dict[str, Hparams]    # the branch's own bundles ({} for a trunk)
    levels: Optional[list[int]]    # 0..L for a branch with levels, else None

    def result_dirs(self) -> list[tuple[Optional[int], Path]]:
        """(level, directory holding done.json) of every result of this run."""
        if self.levels is None:
            return [(None, self.run_dir)]
        return [(level, self.run_dir / f"level_{level}") for level in self.levels]


@dataclass(frozen=True)
class Target:
    words: tuple[str, ...]                      # ("train",) or ("branch", "<name>")
    summary: str
    bundles: dict[str, type[Hparams]]          # the branch's bundle classes ({} for train)
    module: Optional[ModuleType] = None

    @property
    def name(self) -> str:
        return self.words[-1]

    @property
    def has_levels(self) -> bool:
        return "imp" in self.bundles

    def all_bundles(self) -> dict[str, type[Hparams]]:
        return {**TRUNK_BUNDLES, **self.bundles}

    def parser(self) -> Parser:
        """The command's parser with plain defaults: which flags exist and of what type."""
        return build_parser(f"open_prune.py {' '.join(self.words)}", self.summary, [], extra_bundles=self.bundles)

    def help(self, argv: list[str]) -> str:
        return build_parser(f"open_prune.py {' '.join(self.words)}", self.summary, argv,
                            extra_bundles=self.bundles).format_help()

    def locate(self, argv: list[str]) -> Located:
        """Parse one command line of this target and say where its run lives."""
        if self.module is None:
            args = build_parser("open_prune.py train", self.summary, argv).parse_args(argv)
            if args.replicate < 0:
                raise UserError(f"--replicate={args.replicate} must be zero or positive")
            root = Path(args.root).expanduser()
            path = trunk_desc(args).run_path(root, args.replicate)
            return Located(path, path, root, args.replicate, {}, None)
        from training.branches.base import locate
        branch, _ = locate(self.name, self.summary, self.bundles, argv)
        levels = list(range(branch.bundles["imp"].levels + 1)) if self.has_levels else None
        return Located(branch.dir, branch.trunk.dir, branch.trunk.platform.root, branch.replicate,
                       dict(branch.bundles), levels)


def train_target() -> Target:
    from training import train_command
    return Target(("train",), train_command.SUMMARY, {})


def branch_target(name: str) -> Target:
    from training.branches.registry import all_branches
    branches = all_branches()
    if name not in branches:
        raise UserError(f"unknown branch {name!r}; the branches are: {', '.join(branches)}")
    module = branches[name]
    return Target(("branch", name), module.SUMMARY, dict(module.BUNDLES), module)


def parse_target(argv: list[str]) -> tuple[Target, list[str]]:
    """`train ...` or `branch <name> ...` -> the target and the rest of the command line."""
    if argv and argv[0] == "train":
        return train_target(), argv[1:]
    if argv and argv[0] == "branch":
        if len(argv) < 2 or argv[1].startswith("-"):
            raise UserError("report branch needs the branch's name, e.g. `report branch iterative --levels=10 ...`")
        return branch_target(argv[1]), argv[2:]
    given = repr(argv[0]) if argv else "nothing"
    raise UserError(f"report takes a command to report on: `report train ...` or `report branch <name> ...`, "
                    f"not {given}")
