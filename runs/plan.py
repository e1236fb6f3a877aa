"""What `submit` runs: one command line with alternatives, expanded into its runs (the same
expansion as `report`: foundations/grid.py), each located without training or writing, and
told apart as done or to do.

A `train` run is done when the trunk's done.json is readable; a branch run when its finished
marker says it finished with these very unhashed options (`--levels=3` after `--levels=2` is not
done).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from foundations.grid import expand
from runs.target import Target, parse_target


@dataclass(frozen=True)
class Run:
    argv: list[str]  # the whole command line: words, then flags
    directory: Path
    root: Path
    done: bool


def expand_runs(argv: list[str]) -> tuple[Target, list[list[str]]]:
    """The target and the flags of each run of the grid, in grid order."""
    target, flags = parse_target(argv, "submit --")
    return target, expand(flags, target.parser(), bundles=target.all_bundles())


def plan(argv: list[str]) -> list[Run]:
    """Every run of the grid that argv writes, located (parsed exactly as the command would, so a
    bad flag is refused here, before anything is submitted), in grid order."""
    target, grid = expand_runs(argv)
    runs = []
    for flags in grid:
        located = target.locate(flags)
        runs.append(Run([*target.words, *flags], located.run_dir, located.root, located.done))
    return runs
