"""How much two masks agree: the Jaccard overlap of their kept weights, per layer and overall.

J(A, B) = |A ∩ B| / |A ∪ B| over the kept (True) entries; two masks that keep nothing of a layer
agree perfectly there (J = 1). For reference, two independent random masks keeping k_a and k_b of
n weights overlap in about k_a·k_b/n of them, so their Jaccard is about
(k_a·k_b/n) / (k_a + k_b − k_a·k_b/n): a ticket is unique only if it overlaps clearly more.

Nested masks (one's kept weights all among the other's, as IMP's levels are by construction: a
level only prunes what the level before kept) have J = min(k_a, k_b) / max(k_a, k_b) = d_b/d_a
whichever weights they keep, so no random pair is their reference: `nested` says so and their
`random_jaccard` is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

import torch

from foundations.errors import UserError


@dataclass(frozen=True)
class Overlap:
    layer: str  # a weight's name, or "all"
    total: int
    kept_a: int
    kept_b: int
    both: int

    @property
    def either(self) -> int:
        return self.kept_a + self.kept_b - self.both

    @property
    def jaccard(self) -> float:
        return self.both / self.either if self.either else 1.0

    @property
    def nested(self) -> bool:
        """Whether one mask's kept weights all lie among the other's (then J = min/max of the kept
        counts, fixed by the densities alone)."""
        return self.both == min(self.kept_a, self.kept_b)

    @property
    def random_jaccard(self) -> Optional[float]:
        """The Jaccard two independent random masks of these densities have, about; None for
        nested masks, whose Jaccard the densities fix (there is no random baseline to beat)."""
        if self.nested:
            return None
        if not self.total:
            return 1.0
        both = self.kept_a * self.kept_b / self.total
        either = self.kept_a + self.kept_b - both
        return both / either if either else 1.0

    def row(self) -> dict:
        return {"layer": self.layer, "weights": self.total,
                "density_a": self.kept_a / self.total if self.total else 1.0,
                "density_b": self.kept_b / self.total if self.total else 1.0,
                "kept_both": self.both, "jaccard": self.jaccard, "nested": self.nested,
                "random_jaccard": self.random_jaccard}


def check_same_model(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], names: tuple[str, str]) -> None:
    """UserError unless both masks cover the same weights with the same shapes."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise UserError(f"{names[0]} and {names[1]} are masks of different models: weights only in the first "
                        f"{only_a[:3] or '[]'}, only in the second {only_b[:3] or '[]'}")
    for name in a:
        if a[name].shape != b[name].shape:
            raise UserError(f"{names[0]} and {names[1]} are masks of different models: {name} is "
                            f"{tuple(a[name].shape)} in the first and {tuple(b[name].shape)} in the second")


def overlaps(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
             names: tuple[str, str] = ("the first mask", "the second")) -> list[Overlap]:
    """One Overlap per layer (in the first mask's order), then the overall one ("all")."""
    check_same_model(a, b, names)
    layers = []
    for name, mask in a.items():
        other = b[name]
        layers.append(Overlap(name, mask.numel(), int(mask.sum()), int(other.sum()), int((mask & other).sum())))
    total = Overlap("all", sum(o.total for o in layers), sum(o.kept_a for o in layers),
                    sum(o.kept_b for o in layers), sum(o.both for o in layers))
    return [*layers, total]
