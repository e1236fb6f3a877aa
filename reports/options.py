"""Flags and checks that every reading command shares: the root, the output directory, the format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from foundations.cli import Parser
from foundations.errors import UserError
from platforms.platform import ROOT_VARIABLE
from platforms.platform import root_of as platform_root_of
from reports.rundirs import check_root, run_tree_ancestor

FORMATS = ("table", "csv", "json")


def parser(prog: str, description: str) -> Parser:
    return Parser(prog=f"open_prune.py {prog}", description=description)


def add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", metavar="DIR",
                   help="the root of the runs (default: $OPEN_PRUNE_ROOT or ~/open_prune_data)")


def add_out(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", metavar="DIR", help=f"where {what} go (default: <root>/reports/...); never inside a run")


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="table", choices=FORMATS, help="table (default), csv or json, on stdout")


def root_of(args: argparse.Namespace) -> Path:
    """The checked root: --root, else $OPEN_PRUNE_ROOT (named so in the errors), else the default."""
    root, from_env = platform_root_of(args.root)
    return check_root(root, f"${ROOT_VARIABLE}" if from_env else "--root")


def check_outside_runs(path: Path, flag: str = "--out") -> Path:
    """`path` unless it lies inside a run tree, where reading commands never write."""
    inside = run_tree_ancestor(path)
    if inside is not None:
        raise UserError(f"{flag}={path} is inside the run tree {inside}; reading commands never write there: "
                        f"choose a directory outside it (the default is <root>/reports)")
    return Path(path).expanduser()


def output_dir(out: Optional[str], root: Optional[Path], *default: str) -> Path:
    """`--out` if given, else <root>/reports/<default...>; checked to lie outside every run, and
    created."""
    if out is None and root is None:
        raise UserError("give --out (or --root) to say where the files go")
    directory = Path(out).expanduser() if out is not None else Path(root, "reports", *default)
    check_outside_runs(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--out={directory} is a file; give a directory")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
