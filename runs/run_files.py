"""What a training run dir's files say, and repairing those that can be recomputed.

A run is finished when its done.json is readable and its final weights are. A kill (or a copy
that was cut short) can leave either damaged; rather than a traceback or advice that cannot be
followed, each is rebuilt from what is still good, with one line on stderr saying so:
  - done.json from the final weights and the evaluation at the final step in metrics.jsonl;
  - a run whose final weights are unreadable is trained again (training is deterministic);
  - leftover temporary files of a killed writer are removed when the run dir is opened.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from foundations import paths
from foundations.errors import UserError
from foundations.step import Step
from platforms.storage import read_json, remove_leftover_temporaries, write_json
from training import checkpoint
from training.metrics import read_records


def say(message: str) -> None:
    print(f"open_prune: {message}", file=sys.stderr)


def set_aside(path: Path) -> None:
    """Move an unreadable file out of the way (to <name>.damaged), so that it is recomputed and
    the bad copy stays for a look."""
    path = Path(path)
    path.replace(path.with_name(path.name + paths.DAMAGED_SUFFIX))


def open_run_dir(run_dir: Path) -> None:
    """Tidy what a killed process left behind (temporary files) before using a run dir."""
    remove_leftover_temporaries(run_dir)


def _readable_done(path: Path) -> Optional[dict]:
    try:
        done = read_json(path)
    except (OSError, ValueError):
        return None
    return done if isinstance(done, dict) and "final_iteration" in done and "metrics" in done else None


def _recovered_done(run_dir: Path, final: Step) -> Optional[dict]:
    """done.json rebuilt from the final weights and the last evaluation, if both are there."""
    if not final_weights_readable(run_dir, final):
        return None
    metrics = {r["name"]: r["value"] for r in read_records(run_dir / paths.METRICS)
               if r["iteration"] == final.iteration}
    if not metrics:
        return None
    return {"final_step": str(final), "final_iteration": final.iteration, "metrics": metrics,
            "recovered": "rebuilt from the final weights and metrics.jsonl"}


def final_weights_readable(run_dir: Path, final: Step) -> bool:
    try:
        checkpoint.load_model_state(Path(run_dir) / checkpoint.model_filename(final))
    except UserError:
        return False
    return True


def read_done(run_dir: Path, final: Step) -> Optional[dict]:
    """done.json of a finished run; None when the run is not finished. A damaged done.json is
    rebuilt when the final weights and metrics allow it; otherwise it is moved aside
    (done.json.damaged) so that the run trains again from its checkpoint or its start."""
    path = Path(run_dir) / paths.DONE
    if not path.exists():
        return None
    done = _readable_done(path)
    if done is not None:
        return done
    done = _recovered_done(Path(run_dir), final)
    if done is not None:
        write_json(done, path)
        say(f"{path} was unreadable; rebuilt it from the final weights and metrics.jsonl")
        return done
    set_aside(path)
    say(f"{path} was unreadable and cannot be rebuilt (no readable final weights or final metrics); "
        f"moved it to {paths.DONE}{paths.DAMAGED_SUFFIX}: this run trains again")
    return None


def final_step_of(done: dict, iterations_per_epoch: int) -> Step:
    return Step(int(done["final_iteration"]), iterations_per_epoch)


def finished(run_dir: Path, final: Step) -> Optional[dict]:
    """done.json of a run whose final weights are readable too; a run whose final weights are
    damaged is marked unfinished (its done.json moved aside) so that it trains again."""
    done = read_done(run_dir, final)
    if done is None:
        return None
    final = final_step_of(done, final.iterations_per_epoch)
    if final_weights_readable(run_dir, final):
        return done
    weights = Path(run_dir) / checkpoint.model_filename(final)
    set_aside(Path(run_dir) / paths.DONE)
    if weights.exists():
        set_aside(weights)
    say(f"{weights} is missing or unreadable; this run trains again to recompute it")
    return None
