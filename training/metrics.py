"""Metrics streamed to metrics.jsonl: one JSON object per line (iteration, step, name, value)."""

from __future__ import annotations

import json
import os
from pathlib import Path


class MetricLog:
    """Appends metric lines as they are produced; only the primary process writes."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def truncate_after(self, iteration: int) -> None:
        """On resume, drop lines past the checkpoint: they will be produced again, identically."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["iteration"] <= iteration]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, iteration: int, step: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        lines = [json.dumps({"iteration": iteration, "step": step, "name": name, "value": value})
                 for name, value in values.items()]
        with open(self.path, "a") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()

