"""What a stack changes in the loop's boundary work, and nothing else.

- Evaluation is one stacked pass over the test split for all members (`evaluate_stacked`), handed
  to each member's BoundaryWork through its `test_metrics` (`MemberBoundaryWork`), which then logs
  it as the loop does.
- Epoch-end checkpoints are spaced N times further apart (`stack_checkpoint_spacing`): a stack's
  step does N runs' work and a checkpoint writes N files, so spacing them by N x MIN_STEPS keeps the share of
  time spent writing checkpoints what it is alone. `--checkpoint_every` is kept exactly, and where
  checkpoints fall changes no result (a resume is bitwise).
- done.json carries a "stacked" note (training/stacked/loop.py, through the loop's `write_done`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from training.loop import MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS, BoundaryWork
from training.losses import Loss


def stack_checkpoint_spacing(members: int) -> int:
    """The least number of steps between a stack's epoch-end checkpoints (the loop's `Boundaries`
    takes it): `members` times the loop's own."""
    return MIN_STEPS_BETWEEN_EPOCH_CHECKPOINTS * members


class MemberBoundaryWork(BoundaryWork):
    """A member's BoundaryWork whose test metrics come from the stack's one evaluation
    (`evaluation()`, called at each evaluation); the rest is the loop's."""

    evaluation: Callable[[], dict[str, float]]

    def test_metrics(self) -> dict[str, float]:
        return self.evaluation()


@torch.no_grad()
def evaluate_stacked(forward: Callable[[torch.Tensor], torch.Tensor], batches, loss: Loss, members: int,
                     num_examples: int, prefix: str = "test") -> list[dict[str, float]]:
    """Each member's `training.losses.evaluate` (derived=False) from one pass of stacked batches:
    the loss summed per example in float64, top-1 (and top-5 over more than 10 classes) accuracy."""
    loss = loss.unsmoothed()
    sums = None
    top5 = loss.task == "classification" and loss.num_outputs > 10
    for x, y in batches:
        outputs = forward(x).float()
        flat, targets = outputs.flatten(0, 1), y.flatten(0, 1)
        if loss.name == "cross_entropy":
            per_example = F.cross_entropy(flat, targets, reduction="none")
        else:
            per_example = loss.squared_errors(flat, targets)
        part = [per_example.view(members, -1).double().sum(dim=1)]
        if loss.task == "classification":
            part.append((outputs.argmax(dim=2) == y).double().sum(dim=1))
            if top5:
                part.append((outputs.topk(5, dim=2).indices == y[..., None]).any(dim=2).double().sum(dim=1))
        stacked = torch.stack(part, dim=1)
        sums = stacked if sums is None else sums + stacked
    values = sums.div(num_examples).tolist()
    names = [f"{prefix}_loss"] + ([f"{prefix}_accuracy"] if loss.task == "classification" else []) \
        + ([f"{prefix}_top5_accuracy"] if top5 else [])
    return [dict(zip(names, row)) for row in values]
