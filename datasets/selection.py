"""Seeded choices of examples and labels shared by every loader (all on CPU, all batched)."""

import torch

from datasets.seeds import generator
from foundations.checks import check_fraction
from foundations.errors import UserError

TRAINING_SET_SHARE = "a fraction of the training set, e.g. 0.5"


def subsample_indices(num_examples: int, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a class-agnostic random subset of round(fraction * n) examples, in dataset order."""
    check_fraction(fraction, "subsample_fraction", zero=False, one=True, meaning=TRAINING_SET_SHARE)
    kept = max(1, round(fraction * num_examples))
    chosen = torch.randperm(num_examples, generator=generator(seed, "subsample"))[:kept]
    return chosen.sort().values


def randomize_labels(labels: torch.Tensor, fraction: float, num_classes: int, seed: int) -> torch.Tensor:
    """A copy of `labels` where round(fraction * n) seeded positions hold uniformly random classes.

    A new label may equal the old one by chance (probability 1/num_classes), as in the usual
    random-label experiments: the chosen positions carry no information about the input.
    """
    check_fraction(fraction, "random_labels_fraction", one=True, meaning=TRAINING_SET_SHARE)
    count = round(fraction * labels.numel())
    rng = generator(seed, "random_labels")
    positions = torch.randperm(labels.numel(), generator=rng)[:count]
    new = torch.randint(num_classes, (count,), generator=rng, dtype=labels.dtype)
    result = labels.clone()
    result[positions.to(labels.device)] = new.to(labels.device)
    return result


def per_class_indices(labels: torch.Tensor, n: int, num_classes: int, seed: int) -> torch.Tensor:
    """Indices of n seeded random examples of each class, grouped by class: shape (num_classes * n,)."""
    labels = labels.cpu()
    counts = torch.bincount(labels, minlength=num_classes)
    if n < 1 or int(counts.min()) < n:
        raise UserError(
            f"cannot draw {n} examples per class: the smallest class has {int(counts.min())}; "
            "ask for fewer examples per class (n >= 1)"
        )
    shuffled = torch.randperm(labels.numel(), generator=generator(seed, "per_class"))
    grouped = shuffled[torch.sort(labels[shuffled], stable=True).indices]
    starts = torch.cumsum(counts, 0) - counts
    return grouped[(starts[:, None] + torch.arange(n)).reshape(-1)]
