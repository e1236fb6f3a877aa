"""What `submit` runs: one command line with alternatives, expanded into its runs (the same
expansion as `report`: foundations/grid.py), each located without training or writing, and
told apart as done or to do.

A `train` run is done when the trunk's done.json is readable; a branch run when its branch
done.json says it finished with these very unhashed options (`branch_finished`: `--levels=3`
after `--levels=2` is not done).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Optional

from foundations.errors import UserError
from foundations.grid import expand
from foundations.hparams import Hparams
from platforms.platform import Platform
from training.arguments import TRUNK_BUNDLES, build_parser, trunk_desc


@dataclass(frozen=True)
class Command:
    """`train` or `branch <name>`: what its flags are and how it runs."""

    words: tuple[str, ...]
    summary: str
    bundles: dict[str, type[Hparams]]  # the branch's own bundles ({} for train)
    module: Optional[ModuleType] = None  # the branch module (None for train)

    @property
    def prog(self) -> str:
        return f"open_prune.py {' '.join(self.words)}"

    def main(self) -> Callable[[list[str]], int]:
        if self.module is None:
            from training import train_command
            return train_command.main
        return self.module.main


@dataclass(frozen=True)
class Run:
    argv: list[str]  # the whole command line: words, then flags
    directory: Path
    root: Path
    done: bool


def parse_command(argv: list[str]) -> tuple[Command, list[str]]:
    """`train ...` or `branch <name> ...` -> the command and its flags."""
    if argv and argv[0] == "train":
        from training import train_command
        return Command(("train",), train_command.SUMMARY, {}), argv[1:]
    if argv and argv[0] == "branch":
        from training.branches.registry import all_branches
        branches = all_branches()
        if len(argv) < 2 or argv[1] not in branches:
            given = f"{argv[1]!r}" if len(argv) > 1 else "no name"
            raise UserError(f"branch needs one of its names ({', '.join(branches)}), got {given}")
        module = branches[argv[1]]
        return Command(("branch", argv[1]), module.SUMMARY, dict(module.BUNDLES), module), argv[2:]
    given = repr(argv[0]) if argv else "nothing"
    raise UserError(f"submit runs `train ...` or `branch <name> ...` after --, not {given}")


def expand_runs(argv: list[str]) -> tuple[Command, list[list[str]]]:
    """The command and the flags of each run of the grid, in grid order."""
    command, flags = parse_command(argv)
    parser = build_parser(command.prog, command.summary, [], extra_bundles=command.bundles)
    return command, expand(flags, parser, bundles={**TRUNK_BUNDLES, **command.bundles})


def locate(command: Command, flags: list[str]) -> Run:
    """Where one run lives and whether it is done (parses exactly as the command would, so a bad
    flag is refused here, before anything is submitted)."""
    argv = [*command.words, *flags]
    if command.module is None:
        args = build_parser(command.prog, command.summary, flags).parse_args(flags)
        if args.replicate < 0:
            raise UserError(f"--replicate={args.replicate} must be zero or positive")
        from training.trunk import Trunk
        trunk = Trunk(trunk_desc(args), args.replicate, Platform.for_locating(args))
        return Run(argv, trunk.dir, trunk.platform.root, trunk.is_done)
    from training.branches.base import branch_finished, locate as locate_branch
    branch, _ = locate_branch(command.words[1], command.summary, command.bundles, flags, with_devices=False)
    return Run(argv, branch.dir, branch.trunk.platform.root, branch_finished(branch))


def plan(argv: list[str]) -> list[Run]:
    """Every run of the grid that argv writes, located, in grid order."""
    command, grid = expand_runs(argv)
    return [locate(command, flags) for flags in grid]


def run_here(argv: list[str]) -> int:
    """Run one command line in this process, as `open_prune.py <argv>` would."""
    command, flags = parse_command(argv)
    return command.main()(flags)
