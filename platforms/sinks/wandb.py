"""Weights & Biases: one W&B run per training run dir, its files under `<run dir>/wandb/`.

Offline unless $WANDB_MODE says otherwise (an offline run needs no account; `wandb sync
<run dir>/wandb/offline-run-*` uploads it later), so a job never stops at a login prompt.
"""

from __future__ import annotations

import os
import shutil

from platforms.sinks._run_files import RunFiles

NAME = "wandb"
SUMMARY = "a Weights & Biases run (offline unless $WANDB_MODE says otherwise): series, summary, histograms"
PACKAGE = "wandb"  # checked before training: a missing package is one line, not a lost log
FOLDER = "wandb"


def export(run: RunFiles) -> None:
    """The run's metric series logged by iteration, done.json's metrics and compute as its summary,
    and each layer's kept weights at every saved step as a histogram. Name: the run dir under the
    root; config: its hparams; id: derived from the run dir, so the same run is the same W&B run."""
    import wandb

    folder = run.dir / FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    session = wandb.init(project=os.environ.get("WANDB_PROJECT", "open_prune"), name=run.name,
                         id=_run_id(run.name), config=run.config, dir=str(run.dir),
                         mode=os.environ.get("WANDB_MODE", "offline"), reinit="create_new",
                         settings=wandb.Settings(console="off", x_disable_stats=True, silent=True))
    try:
        by_iteration: dict[int, dict[str, float]] = {}
        for record in run.records():
            by_iteration.setdefault(int(record["iteration"]), {})[record["name"]] = record["value"]
        for iteration, kept in run.saved_weights():
            by_iteration.setdefault(iteration, {}).update(
                {f"kept_weights/{name}": wandb.Histogram(values.numpy()) for name, values in kept.items()
                 if values.numel()})
        for iteration in sorted(by_iteration):
            session.log(by_iteration[iteration], step=iteration)
        done = run.done()
        session.summary.update({**{f"final/{k}": v for k, v in done.get("metrics", {}).items()},
                                **{f"compute/{k}": v for k, v in done.get("compute", {}).items()}})
    finally:
        session.finish()


def _run_id(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[:16]
