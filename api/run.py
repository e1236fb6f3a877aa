"""One run dir from Python: its hparams, metrics, done.json, the model at a saved step, its mask."""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Optional, Union

import torch

from foundations import paths
from foundations.errors import UserError

MODEL_FILE = re.compile(r"model_ep(\d+)_it(\d+)\.pt$")


class RunDir:
    """A trunk, a branch, a level or a branch's sub-run: any directory a training run wrote. Its
    hparams are those of the nearest hparams.json at or above it (a level's are its branch's)."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise UserError(f"{self.path} is not a run directory")
        self._hparams_file = next((d / paths.HPARAMS for d in (self.path, *self.path.parents)
                                   if (d / paths.HPARAMS).is_file()), None)
        if self._hparams_file is None:
            raise UserError(f"{self.path} is not inside a run: no hparams.json in it or above it")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @cached_property
    def record(self) -> dict[str, Any]:
        """hparams.json as written: kind, hash, replicate, seeds, hparams, environment."""
        return json.loads(self._hparams_file.read_text())

    @property
    def hparams(self) -> dict[str, dict[str, Any]]:
        """Every hashed hparam by bundle: {"dataset": {...}, "model": {...}, "training": {...}, ...}."""
        return self.record.get("hparams", {})

    @property
    def done(self) -> Optional[dict[str, Any]]:
        """done.json (final step, metrics, compute), or None while the run is not finished."""
        try:
            return json.loads((self.path / paths.DONE).read_text())
        except (OSError, ValueError):
            return None

    @property
    def metrics(self):
        """metrics.jsonl as a DataFrame: iteration, step, name, value (a half-written line is skipped)."""
        from api.frames import _pandas

        records = []
        for line in _lines(self.path / paths.METRICS):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return _pandas().DataFrame(records, columns=["iteration", "step", "name", "value"])

    def curve(self, name: str = "test_accuracy"):
        """One metric series as a pandas Series indexed by iteration."""
        frame = self.metrics
        return frame[frame["name"] == name].set_index("iteration")["value"].rename(name)

    @property
    def saved_steps(self) -> list[str]:
        """The steps whose weights are saved, e.g. ['0ep0it', '1ep0it', '2ep0it'], in step order."""
        found = sorted((int(m[1]), int(m[2])) for p in self.path.iterdir() if (m := MODEL_FILE.match(p.name)))
        return [f"{ep}ep{it}it" for ep, it in found]

    def model(self, step: Optional[str] = None, *, pretrained: Optional[str] = None,
              tokenizer: Optional[str] = None) -> torch.nn.Module:
        """The network with its weights at `step` ('2ep0it', or '2ep'; default: the final step), on
        the CPU, in eval mode. A run that started from a checkpoint (--pretrained) or read its
        corpus through a --tokenizer needs those directories again: the run stores their digests
        (checked here), not their paths."""
        import datasets.registry as datasets_registry
        import models.registry as models_registry
        from foundations.bundles import DatasetHparams, ModelHparams
        from training.checkpoint import load_model_state

        step = step or (self.done or {}).get("final_step") or (self.saved_steps or [None])[-1]
        if step is None:
            raise UserError(f"{self.path} holds no saved weights")
        match = re.fullmatch(r"(\d+)ep(?:(\d+)it)?", step)
        if match is None:
            raise UserError(f"step {step!r}: give it as saved, e.g. {', '.join(self.saved_steps) or '2ep0it'}")
        path = self.path / paths.model_file(int(match[1]), int(match[2] or 0))
        if not path.exists():
            raise UserError(f"no weights saved at {step} in {self.path}; saved: {', '.join(self.saved_steps)}")
        known = {f.name for f in dataclasses.fields(ModelHparams)}
        stored = {k: v for k, v in self.hparams["model"].items() if k in known}
        if stored.get("pretrained_digest") and pretrained is None:
            raise UserError(f"{self.path} started from a checkpoint, which the run knows by its digest only: "
                            "give its directory, open_run(path).model(pretrained=<dir>)")
        model_hparams = ModelHparams(**{**stored, "pretrained": pretrained})  # checks the digest
        dataset = self.hparams["dataset"]
        if dataset.get("tokenizer_digest") and tokenizer is None:
            raise UserError(f"{self.path} read its corpus through a tokenizer, which the run knows by its digest "
                            "only: give its directory, open_run(path).model(tokenizer=<dir>)")
        dataset_hparams = DatasetHparams(**{**{k: v for k, v in dataset.items()
                                                 if k in {f.name for f in dataclasses.fields(DatasetHparams)}},
                                              "tokenizer": tokenizer})  # checks the digest
        info = datasets_registry.info_of(dataset_hparams)
        model = models_registry.get(model_hparams, info.input_shape, info.num_classes, seed=0)
        model.load_state_dict(load_model_state(path))
        return model.eval()

    def mask(self) -> Optional[dict[str, torch.Tensor]]:
        """mask.pt ({weight name: bool tensor}) of a pruned run, or None for a dense one."""
        path = self.path / paths.MASK
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def open_run(path: Union[str, Path]) -> RunDir:
    """One run dir (a path from `api.runs(root).path`, or any run or level directory)."""
    return RunDir(path)
