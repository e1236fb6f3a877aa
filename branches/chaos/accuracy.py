"""How the chaos-causality branch scores a classifier: the authors' accuracy, and macro scores.

The LEGCNet authors' tables (Helper.py `accuracy`) count an example correct only when every
sigmoid output, rounded (floor(a + 0.5): 1 where a >= 0.5), equals the one-hot label: an example
with two outputs above one half, or none, is wrong even where the arg max is right. Their MNIST
code (torch_custom.py `get_accuracy`) takes the arg max of the softmax outputs. ``--accuracy=
authors`` (the default) is exact match for a sigmoid-output loss and the arg max otherwise;
``argmax`` is the arg max everywhere (the loop's own test accuracy). It decides the risk series,
the training-accuracy benchmark and the table's test accuracy.

Macro precision, recall and F1 are scikit-learn's `precision_recall_fscore_support(average=
"macro")` of the arg-max predictions, as the authors' `metrics` computed them.
"""

from __future__ import annotations

from typing import Callable

import sklearn.metrics
import torch
import torch.nn.functional as F

ACCURACIES = ("authors", "argmax")


def exact_match_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) bool: every rounded sigmoid output equals the one-hot label."""
    rounded = logits.float().sigmoid() >= 0.5
    return (rounded == F.one_hot(labels, logits.shape[1]).bool()).all(dim=1)


def argmax_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=1) == labels


def correct_rule(accuracy: str, loss_name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-example rule of `accuracy` (one of ACCURACIES) under the loss `loss_name`."""
    if accuracy not in ACCURACIES:
        raise ValueError(f"accuracy must be one of {ACCURACIES}, got {accuracy!r}")
    return exact_match_correct if accuracy == "authors" and loss_name == "sigmoid_mse" else argmax_correct


def _outputs(model: torch.nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = model.training
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y in loader.batches(0):
            logits.append(model(x).float())
            labels.append(y)
    model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def accuracy_of(model: torch.nn.Module, loader, rule: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
    """The share of the split's examples that `rule` counts correct (one host sync)."""
    logits, labels = _outputs(model, loader)
    return float(rule(logits, labels).double().mean())


def macro_scores(model: torch.nn.Module, loader) -> dict[str, float]:
    """Macro precision, recall and F1 of the arg-max predictions over the whole split."""
    logits, labels = _outputs(model, loader)
    precision, recall, f1, _ = sklearn.metrics.precision_recall_fscore_support(
        labels.cpu().numpy(), logits.argmax(dim=1).cpu().numpy(), average="macro", zero_division=0)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
