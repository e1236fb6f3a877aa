"""`open_prune.py compare-masks A B` (two masks) or `compare-masks BRANCH` (each level's mask
against the next): Jaccard overlap per layer and overall, and per-layer densities side by side.
Beside each Jaccard, that of two independent random masks of the same densities; for nested masks
(IMP's levels: one's kept weights all among the other's) there is none, the densities fix the
Jaccard, and the table says so."""

from __future__ import annotations

from pathlib import Path

from foundations import paths
from foundations.errors import UserError
from foundations.tables import render
from pruning.mask import Mask
from reports import options
from reports.jaccard import overlaps

SUMMARY = "Jaccard overlap and per-layer densities of two masks, or of each level's mask with the next"
COLUMNS = ["layer", "weights", "density_a", "density_b", "kept_both", "jaccard", "nested", "random_jaccard"]
NESTED_NOTE = ("nested: every weight one mask keeps, the other keeps too (IMP's levels are nested by construction); "
               "their jaccard is min(d_a, d_b) / max(d_a, d_b) whichever weights they keep, so it has no random "
               "baseline (random_jaccard -) and says nothing about which weights were chosen")


def mask_file(path: Path) -> Path:
    """A mask.pt given directly, or the one in a run or level directory."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if (path / paths.MASK).is_file():
        return path / paths.MASK
    if not path.exists():
        raise UserError(f"{path} does not exist: give a run dir or level dir with {paths.MASK}, or a {paths.MASK} file")
    raise UserError(f"{path} holds no {paths.MASK}: give a branch run dir or level dir (a trunk has no mask), "
                    f"or a {paths.MASK} file")


def level_masks(branch: Path) -> list[tuple[int, Path]]:
    """(level, mask.pt) of each level of a branch directory that has its mask, in level order."""
    found = []
    for child in branch.iterdir() if branch.is_dir() else ():
        level = paths.level_of(child.name)
        if level is not None and (child / paths.MASK).is_file():
            found.append((level, child / paths.MASK))
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
        rows = [o.row() for o in overlaps(Mask.read(a), Mask.read(b), (str(a), str(b)))]
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
        masks = {level: Mask.read(path) for level, path in levels}
        for (first, _), (second, _) in zip(levels, levels[1:]):
            pair = f"{first}->{second}"
            rows += [{"levels": pair, **o.row()} for o in
                     overlaps(masks[first], masks[second], (f"level_{first}", f"level_{second}"))]
        header = f"{branch}: each level's mask (a) against the next (b)\n"
        columns = ["levels", *COLUMNS]
    if args.format == "table":
        if any(row["nested"] for row in rows):
            header += NESTED_NOTE + "\n"
        print(header)
    print(render(columns, rows, args.format))
    return 0
