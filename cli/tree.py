"""`open_prune.py tree`: trunks -> branches -> levels with status, density and accuracy; with
`--plot FILE`, the same graph as a picture."""

from __future__ import annotations

import sys
from pathlib import Path

from reports import listing, options, tree, tree_plot, where
from reports.rundirs import find_runs

SUMMARY = "draw the run tree under --root: trunk -> branches -> levels, with status, density, accuracy"


def main(argv: list[str]) -> int:
    p = options.parser("tree", SUMMARY)
    options.add_root(p)
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep the runs that match (as in `runs`), with the trunks they branch from")
    p.add_argument("--plot", metavar="FILE", help="also draw the graph to FILE (.png, .pdf or .svg; a relative "
                                                   "name goes under --out)")
    p.add_argument("--engine", default="auto", choices=tree_plot.ENGINES,
                   help="auto (graphviz's dot if on PATH, else matplotlib), dot or matplotlib")
    options.add_out(p, "the picture")
    args = p.parse_args(argv)
    if args.plot:
        tree_plot.check_format(Path(args.plot))  # before the tree is printed, not after
    root = options.root_of(args)
    runs = find_runs(root)
    if args.where:
        conditions = where.conditions(args.where, runs)
        kept = {id(row["_run"]) for row in listing.rows(runs) if where.matches(row, conditions)}
        parents = {(run.parent_hash, run.replicate) for run in runs if id(run) in kept}
        runs = [run for run in runs if id(run) in kept or (run.is_trunk and (run.hash, run.replicate) in parents)]
    forest = tree.build(runs)
    if not forest:
        print(f"no runs under {root}" + (" match the --where conditions" if args.where else ""), file=sys.stderr)
    else:
        print(tree.render(forest))
    if args.plot:
        target = Path(args.plot).expanduser()
        if not target.is_absolute():
            target = options.output_dir(args.out, root) / target
        options.check_outside_runs(target, "--plot")
        engine = tree_plot.draw(forest, target, args.engine)
        print(f"\nwrote {target} ({engine})")
    return 0
