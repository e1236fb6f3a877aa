"""The pruned network measured before any training (the post-training papers' main result), and a
run that trains for zero steps (--finetune_steps=0): its metrics saved once, added to done.json as
`pruned_*`, and shown as rows beside the dense trunk."""

from __future__ import annotations

import torch

from foundations import paths
from platforms.storage import read_json, write_json
from pruning.mask import Mask
from pruning.post_training import calibration
from pruning.post_training.prune import STRATEGIES as POST_TRAINING
from runs import run_files
from runs.branch import Branch, row
from training import checkpoint
from training.losses import Loss, evaluate

PRUNED_METRICS = "pruned_metrics.json"  # the pruned network's test metrics before any training


def pruned_metrics(branch: Branch, model: torch.nn.Module, mask: Mask) -> dict:
    """The test metrics of `model` under `mask` before any training (saved in pruned_metrics.json)."""
    trunk = branch.trunk
    path = branch.dir / PRUNED_METRICS

    def measure() -> dict:
        try:
            stored = read_json(path)
            if isinstance(stored, dict) and stored:
                return stored
        except (OSError, ValueError):
            pass
        net = calibration.masked_network(model, mask.to(next(model.parameters()).device))
        training = trunk.desc.training
        loss = Loss(training.loss, trunk.info.task, trunk.info.num_classes, getattr(training, "label_smoothing", 0.0))
        metrics = evaluate(net, trunk.loader(False), loss)
        run_files.open_run_dir(branch.dir)
        write_json(metrics, path)
        return metrics

    return trunk.platform.on_primary(measure)


def add_pruned_metrics(branch: Branch, before: dict) -> dict:
    """done.json with the before-training metrics added as `pruned_<name>` (rank 0 writes)."""
    def merge() -> dict:
        done = read_json(branch.dir / paths.DONE)
        extra = {f"pruned_{key}": value for key, value in before.items()}
        if any(done["metrics"].get(key) != value for key, value in extra.items()):
            done["metrics"] = {**done["metrics"], **extra}
            write_json(done, branch.dir / paths.DONE)
        return done
    return branch.trunk.platform.on_primary(merge)


def evaluates_before_training(branch: Branch) -> bool:
    h = branch.bundles["oneshot"]
    return h.strategy in POST_TRAINING or h.finetune_steps is not None


def metric_row(label: str, mask: Mask, metrics: dict, run_dir, task: str) -> list[str]:
    """A table row; for a language model the label carries the perplexity (the column is next-token accuracy)."""
    if task == "language_modeling" and metrics.get("test_perplexity") is not None:
        label = f"{label} (perplexity {metrics['test_perplexity']:.3f})"
    return row(label, mask, {"metrics": metrics}, run_dir)


def finish_untrained(branch: Branch, model: torch.nn.Module, mask: Mask, start, before: dict) -> None:
    """The run of --finetune_steps=0: mask.pt, the pruned weights at the start step and a done.json
    whose metrics are the pruned network's (test_* and pruned_test_* alike), as a run that trained
    for zero steps would have."""
    if run_files.finished(branch.dir, start) is not None:
        return
    run_files.open_run_dir(branch.dir)
    mask.save_if_changed(branch.dir)
    pruned = calibration.masked_network(model, mask.to(next(model.parameters()).device))
    checkpoint.save_model(pruned, branch.dir, start)
    metrics = {**before, **{f"pruned_{key}": value for key, value in before.items()}}
    write_json({"final_step": str(start), "final_iteration": start.iteration, "metrics": metrics,
                "seconds_this_session": 0.0}, branch.dir / paths.DONE)
