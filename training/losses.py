"""Training losses and what evaluation reports, by task.

A dataset declares its task: `classification` (integer labels; cross-entropy by default) or
`regression` (float targets; mean squared error). `--loss` picks another loss where a paper did:
the chaos-causality MLPs were trained with the squared error between softmax (or sigmoid)
outputs and one-hot targets. Every loss is a mean over the batch of a per-example loss, and
evaluation reports the same loss (`test_loss`), plus top-1 (and top-5 over more than 10
classes) accuracy for classification.

`language_modeling` (datasets/text_loader.py) is cross-entropy over every position of every
window: outputs (N, T, V), targets (N, T). An "example" is a window, and its loss the mean over its
T tokens, so batch means and split sums divide by windows as for the other tasks and, all windows
being T long, the split's mean is the mean token loss. Evaluation adds next-token accuracy,
perplexity exp(loss) and bits per byte loss / ln 2 (tokens are bytes).

`label_smoothing` (classification and language modelling, cross-entropy only) smooths the training
loss; evaluation reports the plain cross-entropy.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from foundations.bundles import LOSSES
from foundations.errors import UserError

TASKS = ("classification", "regression", "language_modeling")
LABELS = ("classification", "language_modeling")  # integer targets


class Loss:
    """One of LOSSES for one task: `loss(outputs, targets)` is the batch mean, `loss.sum(...)` the
    batch sum (for evaluation)."""

    def __init__(self, name: Optional[str], task: str, num_outputs: int, label_smoothing: float = 0.0):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        name = name or ("cross_entropy" if task in LABELS else "mse")
        if name not in LOSSES:
            raise UserError(f"--loss={name} is unknown: use one of {', '.join(LOSSES)}")
        if task == "regression" and name not in ("mse", "sigmoid_mse"):
            raise UserError(f"--loss={name} needs class labels, but this dataset is a regression task: "
                            f"use --loss=mse (or sigmoid_mse, for sigmoid outputs)")
        if task == "language_modeling" and name != "cross_entropy":
            raise UserError(f"--loss={name} is not defined for language modelling: use --loss=cross_entropy")
        if label_smoothing and name != "cross_entropy":
            raise UserError(f"--label_smoothing smooths the cross-entropy; --loss={name} has none: drop one of them")
        self.name, self.task, self.num_outputs = name, task, num_outputs
        self.label_smoothing = label_smoothing

    def unsmoothed(self) -> "Loss":
        """The same loss without label smoothing (what evaluation reports)."""
        return Loss(self.name, self.task, self.num_outputs)

    def _token_losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Language modelling: each window's mean token cross-entropy, (N,)."""
        losses = F.cross_entropy(outputs.flatten(0, 1).float(), targets.flatten(), reduction="none",
                                 label_smoothing=self.label_smoothing)
        return losses.view(targets.shape).mean(dim=1)

    def squared_errors(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-example mean squared error, (N,)."""
        outputs = outputs.float()
        if self.name == "softmax_mse":
            outputs = outputs.softmax(dim=1)
        elif self.name == "sigmoid_mse":
            outputs = outputs.sigmoid()
        if self.task == "classification":
            targets = F.one_hot(targets, outputs.shape[1]).to(outputs.dtype)  # a head may be wider (_head1000)
        else:
            targets = targets.to(outputs.dtype).reshape(outputs.shape)
        return (outputs - targets).square().flatten(1).mean(dim=1)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task == "language_modeling":
            return self._token_losses(outputs, targets).mean()
        if self.name == "cross_entropy":
            return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)
        return self.squared_errors(outputs, targets).mean()

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task == "language_modeling":
            return self._token_losses(outputs, targets).sum()
        if self.name == "cross_entropy":
            return F.cross_entropy(outputs.float(), targets, reduction="sum", label_smoothing=self.label_smoothing)
        return self.squared_errors(outputs, targets).sum()


def evaluate(model: torch.nn.Module, loader, loss: Loss, prefix: str = "test", derived: bool = True
             ) -> dict[str, float]:
    """`<prefix>_loss` and, for classification, `<prefix>_accuracy` (and `<prefix>_top5_accuracy`
    over more than 10 classes) over the whole split, in one host sync; for language modelling
    `<prefix>_accuracy` is next-token accuracy, plus `<prefix>_perplexity` and `<prefix>_bits_per_byte`
    (`with_derived`; derived=False leaves them out, for a caller that first adds the shards' means)."""
    loss = loss.unsmoothed()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    top5 = loss.task == "classification" and loss.num_outputs > 10
    with torch.no_grad():
        for x, y in loader.batches(0):
            outputs = model(x).float()
            sums[0] += loss.sum(outputs, y)
            if loss.task == "language_modeling":
                sums[1] += (outputs.argmax(dim=-1) == y).double().mean(dim=1).sum()
            if loss.task == "classification":
                sums[1] += (outputs.argmax(dim=1) == y).sum()
                if top5:
                    sums[2] += (outputs.topk(5, dim=1).indices == y[:, None]).any(dim=1).sum()
    model.train(was_training)
    values = sums.div(loader.num_examples).tolist()
    metrics = {f"{prefix}_loss": values[0]}
    if loss.task == "language_modeling":
        metrics[f"{prefix}_accuracy"] = values[1]
    if loss.task == "classification":
        metrics[f"{prefix}_accuracy"] = values[1]
        if top5:
            metrics[f"{prefix}_top5_accuracy"] = values[2]
    return with_derived(metrics, loss.task, prefix) if derived else metrics


def with_derived(metrics: dict[str, float], task: str, prefix: str = "test") -> dict[str, float]:
    """Language modelling: `<prefix>_perplexity` = exp(loss) and `<prefix>_bits_per_byte` = loss / ln 2,
    from the whole split's mean loss (so after the ranks' shares are added)."""
    if task == "language_modeling" and f"{prefix}_loss" in metrics:
        loss = metrics[f"{prefix}_loss"]
        metrics = {**metrics, f"{prefix}_perplexity": math.exp(min(loss, 700.0)),
                   f"{prefix}_bits_per_byte": loss / math.log(2)}
    return metrics
