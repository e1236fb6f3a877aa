"""Collect the chaos-causality runs of experiments/chaos_*.sh into the markdown rows of
docs/chaos-causality.md: for every NAME.log under the given roots, the branch directory it names,
its pruned count and its table.json rows.

Usage: python experiments/chaos_collect.py ROOT [ROOT ...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

COLUMNS = ("pruned_all_percent", "test_accuracy", "macro_precision", "macro_recall", "macro_f1", "epochs", "seconds",
           "flops")


def cell(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def rows(log: Path) -> list[str]:
    found = re.findall(r"^branch chaos-causality: (\S+)$", log.read_text(), flags=re.M)
    if not found:
        return [f"| {log.stem} | (not finished) |"]
    branch = Path(found[-1])
    causality = json.loads((branch / "causality.json").read_text())
    table = json.loads((branch / "table.json").read_text())["networks"]
    out = []
    for network in table:
        values = [cell(network[c], d) for c, d in zip(COLUMNS, (2, 4, 4, 4, 4, 0, 1, 0))]
        reached = {None: "-", True: "yes", False: "no"}[network["benchmark"]]
        out.append(f"| {log.stem} | {network['network']} | {causality['pruned']}/{causality['analysed']} | "
                   + " | ".join(values) + f" | {reached} |")
    return out


def main(roots: list[str]) -> int:
    for root in roots:
        for log in sorted(Path(root).glob("*.log")):
            print("\n".join(rows(log)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
