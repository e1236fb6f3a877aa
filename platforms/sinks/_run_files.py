"""What a sink logs, read from a finished training run's directory alone."""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from foundations import paths

MODEL_FILE = re.compile(r"model_ep(\d+)_it(\d+)\.pt$")
STEP = re.compile(r"(\d+)ep(\d+)it")


class RunFiles:
    """One training run dir (a trunk, a branch, a level or a branch's sub-run) and the hparams.json
    of the run it belongs to (its own, or the nearest one above it)."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)

    @cached_property
    def hparams_file(self) -> Optional[Path]:
        for directory in (self.dir, *self.dir.parents):
            if (directory / paths.HPARAMS).is_file():
                return directory / paths.HPARAMS
            if paths.TRAIN_DIR.match(directory.name):
                return None
        return None

    @cached_property
    def hparams(self) -> dict[str, Any]:
        """hparams.json as written (empty when there is none)."""
        try:
            return json.loads(self.hparams_file.read_text()) if self.hparams_file else {}
        except (OSError, ValueError):
            return {}

    @cached_property
    def root(self) -> Optional[Path]:
        """The root of the runs: the directory above train_<hash> (None outside a run tree)."""
        return next((d.parent for d in (self.dir, *self.dir.parents) if paths.TRAIN_DIR.match(d.name)), None)

    @property
    def name(self) -> str:
        """The run dir relative to the root, e.g. train_<hash>/replicate_1/branch_oneshot_<hash>."""
        return str(self.dir.relative_to(self.root)) if self.root else self.dir.name

    @property
    def config(self) -> dict[str, Any]:
        """Every hparam as `bundle.field`, and the run's kind, hash, parent hash and replicate."""
        flat = {f"{bundle}.{name}": value for bundle, values in self.hparams.get("hparams", {}).items()
                if isinstance(values, dict) for name, value in values.items()}
        extra = {key: self.hparams.get(key) for key in ("kind", "hash", "parent_hash", "replicate")}
        return {**{k: v for k, v in extra.items() if v is not None}, **flat, "run_dir": self.name}

    def records(self) -> list[dict[str, Any]]:
        """metrics.jsonl's well-formed records with a numeric value, in file order."""
        found = []
        try:
            lines = (self.dir / paths.METRICS).read_text().splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a half-written last line
            value = record.get("value") if isinstance(record, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(record.get("name"), str):
                found.append(record)
        return found

    def done(self) -> dict[str, Any]:
        try:
            done = json.loads((self.dir / paths.DONE).read_text())
        except (OSError, ValueError):
            return {}
        return done if isinstance(done, dict) else {}

    def saved_weights(self) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(iteration, {prunable weight: its kept values}) at each saved step, in step order; a
        weight is kept where it is nonzero (pruned weights are exactly zero)."""
        ipe = self.iterations_per_epoch()
        files = sorted((int(m[1]) * ipe + int(m[2]), path) for path in self.dir.iterdir()
                       if (m := MODEL_FILE.match(path.name)) and (ipe or m[1] == "0"))
        for iteration, path in files:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a damaged file: the run's repairs deal with it; a sink skips it
                continue
            yield iteration, {name: tensor[tensor != 0] for name, tensor in state.items()
                              if name.endswith("weight") and tensor.dim() > 1}

    def iterations_per_epoch(self) -> int:
        """Steps per epoch, from a record whose step is past the first epoch (metrics.jsonl keeps both
        forms: `iteration` and `step`, e.g. 2ep3it); 0 when no record says."""
        for record in [*self.records(), {"iteration": self.done().get("final_iteration"),
                                         "step": self.done().get("final_step")}]:
            m = STEP.fullmatch(str(record.get("step")))
            if m and int(m[1]) > 0 and isinstance(record.get("iteration"), int):
                return (record["iteration"] - int(m[2])) // int(m[1])
        return 0

    def summary_text(self) -> str:
        """done.json's final metrics and compute as a Markdown table."""
        done = self.done()
        rows = [("final_step", done.get("final_step"))]
        rows += sorted(done.get("metrics", {}).items()) + sorted(done.get("compute", {}).items())
        return "| | |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)
