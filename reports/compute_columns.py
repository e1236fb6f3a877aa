"""The compute columns of `runs` and `report`: parameters and FLOPs from a run's done.json
(`compute`, written once by the training loop: training/compute.py), compactly formatted."""

from __future__ import annotations

import math
from typing import Any, Optional

# column name: key in done.json's `compute`
COLUMNS = {"parameters": "parameters", "prunable": "prunable", "nonzero": "nonzero",
           "flops_dense": "forward_flops_dense", "flops": "forward_flops", "speedup": "speedup",
           "training_flops": "training_flops"}
SHOWN = ["nonzero", "flops", "speedup", "training_flops"]  # in a table; CSV and JSON carry every one


def values(compute: dict[str, Any]) -> dict[str, Optional[float]]:
    """{column: number or None} from a run's `compute` record ({} for runs written before it)."""
    return {column: compute.get(key) for column, key in COLUMNS.items()}


def short(value: Any) -> str:
    """A count as people read it: 532.4K, 81.63M, 1.2G; '-' for nothing."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "-"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.4g}{suffix}"
    return f"{value:.4g}"


def speedup(value: Any) -> str:
    return f"{value:.2f}x" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


FORMATS = {"parameters": short, "prunable": short, "nonzero": short, "flops_dense": short, "flops": short,
           "training_flops": short, "speedup": speedup}
