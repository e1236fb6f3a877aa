"""`open_prune.py runs`: every run under the root with its kind, status, differing hparams, final
test accuracy and density, read from the small files alone."""

from __future__ import annotations

import shutil
import sys

from foundations.tables import hparam_text, render
from reports import compute_columns, listing, options, where
from reports.rundirs import find_runs

SUMMARY = "list the runs under --root: kind, status, the hparams that differ, accuracy, density"


def main(argv: list[str]) -> int:
    p = options.parser("runs", SUMMARY)
    options.add_root(p)
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep runs whose hparam field (or kind, status, replicate, level) has this value; "
                        "repeat for more conditions (a key repeated matches any of its values)")
    options.add_format(p)
    args = p.parse_args(argv)
    root = options.root_of(args)
    runs = find_runs(root)
    all_rows = listing.rows(runs)
    conditions = where.conditions(args.where, runs)
    kept = [row for row in all_rows if where.matches(row, conditions)]
    if args.format == "table":
        shown = listing.defining(kept)
        trailing = [c for c in listing.trailing(kept) if c != "result" or any(row["result"] for row in kept)]
        columns = listing.LEADING + shown + trailing + (["note"] if any(row["note"] for row in kept) else [])
    else:
        shown = listing.every_field(kept)
        columns = (listing.LEADING + shown + listing.trailing(kept, every=True) + listing.COMPUTE
                   + ["hash", "parent_hash", "note", *listing.ENVIRONMENT])
    if not kept and args.format == "table":
        print(f"no runs under {root}" + (" match the --where conditions" if conditions else ""), file=sys.stderr)
        return 0
    formats = {name: hparam_text for name in shown}
    if args.format == "table":
        formats.update(compute_columns.FORMATS)
    if args.format == "table" and sys.stdout.isatty():  # a terminal: hparam columns give way to its width
        columns, dropped = listing.fit(columns, shown, kept, shutil.get_terminal_size().columns, formats)
        if dropped:
            print(f"({len(dropped)} hparam column(s) left out to fit the terminal: {', '.join(dropped)}; "
                  f"--format=csv shows every one)", file=sys.stderr)
    print(render(columns, kept, args.format, formats=formats))
    return 0
