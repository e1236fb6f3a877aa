"""`open_prune.py compare-masks A B` (two masks) or `compare-masks BRANCH` (each level's mask
against the next): Jaccard overlap per layer and overall, and per-layer densities side by side."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from foundations.errors import UserError
from platforms.storage import load_torch
from reports import options
from reports.jaccard import overlaps
from reports.tables import render

SUMMARY = "Jaccard overlap and per-layer densities of two masks, or of each level's mask with the next"
MASK = "mask.pt"
LEVEL = re.compile(r"^level_(\d+)$")
COLUMNS = ["layer", "weights", "density_a", "density_b", "kept_both", "jaccard", "random_jaccard"]


def mask_file(path: Path) -> Path:
    """A mask.pt given directly, or the one in a run or level directory."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if (path / MASK).is_file():
        return path / MASK
    if not path.exists():
        raise UserError(f"{path} does not exist: give a run dir or level dir with {MASK}, or a {MASK} file")
    raise UserError(f"{path} holds no {MASK}: give a branch run dir or level dir (a trunk has no mask), "
                    f"or a {MASK} file")


def load_mask(path: Path) -> dict[str, torch.Tensor]:
    try:
        tensors = load_torch(path)
    except Exception as error:  # truncated, foreign or not a torch file
        raise UserError(f"{path} cannot be read as a mask ({type(error).__name__}); is it a half-written file?")
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.bool
                                               for t in tensors.values()):
        raise UserError(f"{path} is not a mask (a dict of bool tensors)")
    return tensors


def level_masks(branch: Path) -> list[tuple[int, Path]]:
    """(level, mask.pt) of each level of a branch directory that has its mask, in level order."""
    found = []
    for child in branch.iterdir() if branch.is_dir() else ():
        match = LEVEL.match(child.name)
        if match and (child / MASK).is_file():
            found.append((int(match[1]), child / MASK))
    return sorted(found)


def main(argv: list[str]) -> int:
    p = options.parser("compare-masks", SUMMARY)
    p.add_argument("masks", nargs="+", metavar="MASK",
                   help="two run dirs, level dirs or mask.pt files; or one branch dir with levels")
    options.add_format(p)
    args = p.parse_args(argv)
    if len(args.masks) > 2:
        raise UserError(f"compare-masks takes two masks or one branch dir, not {len(args.masks)} paths")
    if len(args.masks) == 2:
        a, b = (mask_file(Path(m)) for m in args.masks)
        rows = [o.row() for o in overlaps(load_mask(a), load_mask(b), (str(a), str(b)))]
        header = f"a: {a}\nb: {b}\n"
        columns = COLUMNS
    else:
        branch = Path(args.masks[0]).expanduser()
        levels = level_masks(branch)
        if len(levels) < 2:
            mask_file(branch)  # a single mask: say so in its own words if it is not even that
            raise UserError(f"{branch} has no two levels with masks: give two masks, or a branch dir of "
                            f"iterative, rewinding or reinitialize with at least two levels")
        rows = []
        masks = {level: load_mask(path) for level, path in levels}
        for (first, _), (second, _) in zip(levels, levels[1:]):
            pair = f"{first}->{second}"
            rows += [{"levels": pair, **o.row()} for o in
                     overlaps(masks[first], masks[second], (f"level_{first}", f"level_{second}"))]
        header = f"{branch}: each level's mask (a) against the next (b)\n"
        columns = ["levels", *COLUMNS]
    if args.format == "table":
        print(header)
    print(render(columns, rows, args.format))
    return 0
