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
    those examples, their order, and the random scores; `input_shape` is one example's shape, for
    synflow's all-ones input; `weight_decay` is the scored run's, which opd turns into its prior.
    `batch_size` cuts the examples into batches that are scored one at
    a time, each batch's score weighted by its share of the examples (what the lottery-ticket fork
    of "Missing the Mark" does with the training batch size, in train mode, so BatchNorm
    normalizes per batch); the examples are shuffled by the seed first so that a batch is not one
    class. None scores all examples as one batch (Synaptic-Flow's choice).
    """

    examples: Optional[ExampleSource] = None
    seed: int = 0
    input_shape: Optional[tuple[int, ...]] = None
    batch_size: Optional[int] = None
    weight_decay: Optional[float] = None  # the training weight decay, for opd's prior

    def weighted_batches(self, n: int, device: torch.device, dtype: torch.dtype,
                         ) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """(inputs, labels, share) batches of the n-per-class examples; the shares sum to 1."""
        if self.examples is None:
            raise ValueError("this score needs training examples: pass ScoringData(examples=<loader>)")
        inputs, labels = self.examples.examples_per_class(n, self.seed)
        total = labels.shape[0]
        tokens = labels.ndim > 1  # a language model's windows: its token ids stay integers
        size = self.batch_size or total
        if size < total:
            order = torch.randperm(total, generator=torch.Generator().manual_seed(self.seed)).to(labels.device)
            inputs, labels = inputs.index_select(0, order), labels.index_select(0, order)
        for start in range(0, total, size):
            x = inputs[start:start + size].to(device=device, dtype=None if tokens else dtype)
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


def batch_losses(net: nn.Module, data: ScoringData, n: int, temperature: float = 1.0,
                 ) -> Iterator[tuple[torch.Tensor, float]]:
    """(mean cross-entropy of net(x) / temperature over one batch, the batch's share). Token ids
    (integer inputs, a language model's windows) stay integers; a language model's (N, T, V) logits
    against (N, T) next tokens give the mean over every position, the training loss's mean."""
    reference = next(net.parameters())
    for x, y, share in data.weighted_batches(n, reference.device, reference.dtype):
        logits = net(x) / temperature
        if logits.ndim == 3:
            logits, y = logits.flatten(0, 1), y.flatten()
        yield F.cross_entropy(logits, y), share
