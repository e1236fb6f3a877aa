"""The chaos-causality table: the dense network, the pruned one and the controls, side by side.

Per network, the authors' headline columns: the share of the analysed weights and of all
prunable weights that is pruned, the final test accuracy (by --accuracy: branches/chaos/
accuracy.py), macro precision, recall and F1 (scikit-learn, arg-max predictions on the test
split), the epochs trained and their wall-clock seconds (to the benchmark with
--stop_at_train_accuracy, and whether it was reached; none for a network trained in a stack, whose
clock is the stack's), and the forward FLOPs per example of the
pruned network (training/flops.py: dense FLOPs per layer times the layer's density). On disk as
table.csv (what is printed) and table.json (the same values as numbers), rewritten only when they
change.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from platforms.storage import json_safe, write_text
from pruning.mask import Mask

HEADER = ["network", "% pruned (analysed)", "% pruned (all)", "test accuracy", "macro-precision", "macro-recall",
          "macro-F1", "epochs", "seconds", "benchmark", "FLOPs"]


@dataclass
class NetworkResult:
    network: str
    pruned_analysed_percent: float
    pruned_all_percent: float
    test_accuracy: Optional[float]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    epochs: float
    seconds: Optional[float]
    benchmark: Optional[bool]  # reached; None without --stop_at_train_accuracy
    flops: float  # forward FLOPs per example, each layer at its density
    run: str


def pruned_percent(mask: Optional[Mask], layers: Optional[list[str]] = None) -> float:
    """Percent of the mask's weights (of `layers` only, if given) that are pruned."""
    if mask is None:
        return 0.0
    names = mask.keys() if layers is None else layers
    total = sum(mask[name].numel() for name in names)
    kept = sum(int(mask[name].count_nonzero()) for name in names)
    return 100.0 * (total - kept) / total if total else 0.0


def cells(result: NetworkResult) -> list[str]:
    def number(value: Optional[float], digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    reached = {None: "-", True: "reached", False: "not reached"}[result.benchmark]
    return [result.network, number(result.pruned_analysed_percent, 2), number(result.pruned_all_percent, 2),
            number(result.test_accuracy, 4), number(result.macro_precision, 4), number(result.macro_recall, 4),
            number(result.macro_f1, 4), number(result.epochs, 2), number(result.seconds, 1), reached,
            number(result.flops, 0)]


def write_table(directory: Path, results: list[NetworkResult]) -> list[list[str]]:
    """table.csv and table.json in `directory`; returns the printed rows."""
    rows = [cells(result) for result in results]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerows([HEADER, *rows])
    everything = json.dumps(json_safe({"header": HEADER, "networks": [asdict(r) for r in results]}), indent=2,
                            sort_keys=True, allow_nan=False) + "\n"
    for content, name in ((text.getvalue(), "table.csv"), (everything, "table.json")):
        path = Path(directory) / name
        if not path.exists() or path.read_text() != content:
            write_text(content, path)
    return rows
