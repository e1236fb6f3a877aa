"""TensorBoard event files under `<run dir>/tensorboard/`: `tensorboard --logdir <root>` shows every run."""

from __future__ import annotations

import shutil

from platforms.sinks._run_files import RunFiles

NAME = "tensorboard"
SUMMARY = "event files under <run>/tensorboard: every metric series, the final metrics as text, kept-weight histograms"
PACKAGE = "tensorboard"  # checked before training: a missing package is one line, not a lost log
FOLDER = "tensorboard"


def export(run: RunFiles) -> None:
    """Scalars from every metric series (tag = its name, step = its iteration), the final metrics and
    compute as text, and a histogram of each layer's kept weights at every saved step. Rewritten
    from the run's files each time the run finishes, so a retrained run is never logged twice."""
    from torch.utils.tensorboard import SummaryWriter

    folder = run.dir / FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for record in run.records():
            writer.add_scalar(record["name"], record["value"], global_step=int(record["iteration"]))
        writer.add_text("final", run.summary_text())
        writer.add_text("hparams", "\n".join(f"- {key}: {value}" for key, value in run.config.items()))
        for iteration, kept in run.saved_weights():
            for name, values in kept.items():
                if values.numel():
                    writer.add_histogram(f"kept_weights/{name}", values, global_step=iteration)
    finally:
        writer.close()
