"""Tracking sinks: where a finished training run is also logged (`--log_to=tensorboard,wandb`).

A sink is one module here declaring NAME, SUMMARY and `export(run: RunFiles) -> None` (the registry
convention of foundations/registry.py): adding MLflow is adding `mlflow.py`. Each sink reads what
the run dir already holds (`_run_files.RunFiles`: the metric series of metrics.jsonl, done.json,
the weights at each saved step and the kept ones among them, the hparams.json of the run it
belongs to), so it sees exactly what the reading commands see, costs nothing per training step, and
a resumed run is logged once, never twice. `--log_to` says where a run goes, never what it is, so it
is not hashed.
"""

from __future__ import annotations

import importlib.util
import sys

from foundations.errors import UserError
from foundations.registry import Registry, declared_strings, module_path

SINKS = Registry("platforms.sinks", kind="sink", attribute="export", expected=callable, expected_as="a function")


def parse(text: str | None) -> tuple[str, ...]:
    """`tensorboard,wandb` -> ("tensorboard", "wandb"); a UserError naming the sinks for an unknown one."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in (text or "").split(",") if part.strip()))
    for name in names:
        if name not in SINKS.entries:
            raise UserError(f"--log_to={text}: unknown sink {name!r}; the sinks are: {', '.join(SINKS.names())}")
        package = declared_strings(module_path(SINKS.entries[name].module)).get("PACKAGE")
        if package and importlib.util.find_spec(package) is None:
            raise UserError(f"--log_to={name} needs the {package} package, which is not installed here: "
                            f"pip install {package}")
    return names


def export(run_dir, names: tuple[str, ...]) -> None:
    """Log the finished run in `run_dir` to each sink named (rank 0 only: the caller's to ensure)."""
    if not names:
        return
    from platforms.sinks._run_files import RunFiles

    run = RunFiles(run_dir)
    for name in names:
        try:
            SINKS.get(name)(run)
        except Exception as error:  # the run is done and its files are intact: say so, never lose it
            print(f"open_prune: --log_to={name} could not log {run_dir}: {type(error).__name__}: {error}",
                  file=sys.stderr)
