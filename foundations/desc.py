"""A run's description: its hparam bundles, its hash, and where it lives.

The hash is a digest of the canonical strings of the bundles (fields equal to their default are
left out), so adding a default-off field later keeps every existing hash and therefore every
existing run directory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from foundations import paths
from foundations.bundles import DatasetHparams, ModelHparams, TrainingHparams
from foundations.hparams import Hparams
from foundations.seeds import derive_seed


def hash_bundles(bundles: dict[str, Hparams], extra: str = "") -> str:
    """Digest of the bundles' canonical strings (in key order) plus `extra` (e.g. a parent hash)."""
    text = ";".join(f"{key}={bundles[key].canonical()}" for key in sorted(bundles)) + extra
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class TrainDesc:
    """The trunk: dense training of one model on one dataset."""

    dataset: DatasetHparams
    model: ModelHparams
    training: TrainingHparams

    def bundles(self) -> dict[str, Hparams]:
        return {"dataset": self.dataset, "model": self.model, "training": self.training}

    @property
    def hash(self) -> str:
        return hash_bundles(self.bundles())

    def run_path(self, root: Path, replicate: int) -> Path:
        return paths.trunk_dir(root, self.hash, replicate)

    def seeds(self, replicate: int) -> dict[str, int]:
        """The seeds this run uses: explicit hparams win, otherwise derived from the replicate."""
        def pick(explicit: Optional[int], purpose: str) -> int:
            return explicit if explicit is not None else derive_seed(replicate, purpose)
        return {
            "init": pick(self.model.init_seed, "init"),
            "data_order": pick(self.training.data_order_seed, "data_order"),
            "transformation": pick(self.dataset.transformation_seed, "transformation"),
        }

    @classmethod
    def from_dict(cls, stored: dict) -> "TrainDesc":
        return cls(DatasetHparams.from_dict(stored["dataset"]), ModelHparams.from_dict(stored["model"]),
                   TrainingHparams.from_dict(stored["training"]))
