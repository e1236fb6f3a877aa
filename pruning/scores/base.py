"""What every score shares: its inputs (ScoringData), its call signature (Score), and a copy of
the model with the mask applied, so scoring never changes the caller's model (weights, running
statistics, train/eval mode, gradients)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from pruning.mask import Mask


class ExampleSource(Protocol):
    def examples_per_class(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n seeded examples of every class from the training set, unaugmented: (inputs, labels)."""


@dataclass(frozen=True)
class ScoringData:
    """What a score may read besides the model and the mask.

    `examples` serves snipN/graspN/graspabsN (the datasets Loader has this method); `seed` picks
    those examples and the random scores; `input_shape` is one example's shape (C, H, W), for
    synflow's all-ones input. `batch_size` splits the examples into chunks whose gradients are
    summed (for memory); None scores them as one batch, the published setting (with BatchNorm in
    train mode, chunking changes the batch statistics and so the scores).
    """

    examples: Optional[ExampleSource] = None
    seed: int = 0
    input_shape: Optional[tuple[int, ...]] = None
    batch_size: Optional[int] = None

    def weighted_batches(self, n: int, device: torch.device, dtype: torch.dtype,
                         ) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """(inputs, labels, share) chunks of the n-per-class examples; the shares sum to 1, so
        sum(share * mean loss of chunk) is the mean loss over all examples."""
        if self.examples is None:
            raise ValueError("this score needs training examples: pass ScoringData(examples=<loader>)")
        inputs, labels = self.examples.examples_per_class(n, self.seed)
        total = labels.shape[0]
        size = self.batch_size or total
        for start in range(0, total, size):
            x = inputs[start:start + size].to(device=device, dtype=dtype)
            y = labels[start:start + size].to(device)
            yield x, y, y.shape[0] / total


class Score(Protocol):
    def __call__(self, model: nn.Module, mask: Mask, data: Optional[ScoringData],
                 ) -> dict[str, torch.Tensor]:
        """A score for every weight in `mask`, shaped like it (higher = more important)."""


def masked_copy(model: nn.Module, mask: Mask, *, train: bool, dtype: Optional[torch.dtype] = None,
                ) -> tuple[nn.Module, list[torch.Tensor]]:
    """A deep copy of `model` (cast to `dtype` if given) with pruned weights zeroed and in train or
    eval mode, and its prunable weights (in mask order) ready for autograd."""
    net = copy.deepcopy(model)
    if dtype is not None:
        net.to(dtype)
    net.train(train)
    net.zero_grad(set_to_none=True)
    parameters = dict(net.named_parameters())
    weights = [parameters[name] for name in mask]
    with torch.no_grad():
        for name, weight in zip(mask, weights):
            weight.mul_(mask[name].to(weight.device))
    for weight in weights:
        weight.requires_grad_(True)
    return net, weights


def loss_chunks(net: nn.Module, data: ScoringData, n: int, temperature: float = 1.0,
                ) -> Iterator[torch.Tensor]:
    """Cross-entropy of net(x) / temperature per chunk, weighted so the chunks sum to the mean."""
    reference = next(net.parameters())
    for x, y, share in data.weighted_batches(n, reference.device, reference.dtype):
        yield F.cross_entropy(net(x) / temperature, y) * share


def loss_gradient(net: nn.Module, weights: list[torch.Tensor], data: ScoringData, n: int,
                  temperature: float = 1.0) -> list[torch.Tensor]:
    """Gradient of the mean loss over the n-per-class examples with respect to `weights`."""
    total = [torch.zeros_like(w) for w in weights]
    for loss in loss_chunks(net, data, n, temperature):
        torch._foreach_add_(total, torch.autograd.grad(loss, weights))
    return total
