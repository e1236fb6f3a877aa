"""Every name in a run directory, in one place: the writers and the readers both use these.

    <root>/train_<hash>/replicate_<r>/main/                          a trunk
    <root>/train_<hash>/replicate_<r>/branch_<name>_<hash>/          a branch of it
    <root>/train_<hash>/replicate_<r>/branch_<name>_<hash>/level_<L>/   the levels of a branch with levels

A stage is done iff its artifact exists; each file is written to a temporary name and renamed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

# ---- files of a run dir ----------------------------------------------------------------------
HPARAMS = "hparams.json"        # every hashed field, seeds, schema and package version, parent hash
HPARAMS_LOG = "hparams.log"     # the same, for people
METRICS = "metrics.jsonl"       # one JSON record per line: iteration, step, name, value
CHECKPOINT = "checkpoint.pt"    # model, optimizer, RNG, hook states: what a resume needs
MASK = "mask.pt"                # the pruning mask (bool tensors by weight name)
SPARSITY = "sparsity.json"      # the mask's counts, total and per layer
DONE = "done.json"              # written last by the training loop: the final step and metrics
BRANCH_DONE = "branch_done.json"  # written last by a branch: its rows and unhashed options (its own marker)
FAILED = "failed.json"          # why a run stopped (a diverged loss); its checkpoint stays
DAMAGED_SUFFIX = ".damaged"     # an unreadable file moved aside to be recomputed

# ---- directories -----------------------------------------------------------------------------
TRUNK_DIR = "main"
TRAIN_DIR = re.compile(r"^train_[0-9a-f]{12,}$")
REPLICATE_DIR = re.compile(r"^replicate_(\d+)$")
BRANCH_DIR = re.compile(r"^branch_(.+)_([0-9a-f]{12,})$")
LEVEL_DIR = re.compile(r"^level_(\d+)$")
MODEL_FILE = re.compile(r"^model_ep(\d+)_it(\d+)\.pt$")


def model_file(epoch: int, iteration_in_epoch: int) -> str:
    """The weights saved at a step: model_ep<E>_it<I>.pt."""
    return f"model_ep{epoch}_it{iteration_in_epoch}.pt"


def trunk_dir(root: Path, train_hash: str, replicate: int) -> Path:
    return Path(root) / f"train_{train_hash}" / f"replicate_{replicate}" / TRUNK_DIR


def branch_dir(trunk_dir_: Path, name: str, branch_hash: str) -> Path:
    """A branch lives beside its trunk, in the trunk's replicate directory."""
    return Path(trunk_dir_).parent / f"branch_{name}_{branch_hash}"


def level_dir(branch_dir_: Path, level: int) -> Path:
    return Path(branch_dir_) / f"level_{level}"


def level_of(directory_name: str) -> Optional[int]:
    """The level a `level_<L>` directory name holds, else None."""
    match = LEVEL_DIR.match(directory_name)
    return int(match[1]) if match else None
