"""What an orderedness measurement returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class OrderednessResult:
    """One entry per block; every tensor has the blocks' leading (batch) shape.

    orderedness    1 - backward_mass / total_mass, NaN where `undefined`
    permutation    (..., N) the order found: the outputs 0..O-1 first, then hidden indices O..N-1
    backward_mass  sum of |A| strictly below the diagonal in that order
    total_mass     sum of |A|, self-loops included
    diagonal_mass  the self-loop part of total_mass (never backward, whatever the order)
    undefined      the block is all zeros (or not finite): there is nothing to order
    exact          True when the permutation is proven optimal by the method (DP or brute force)
    gap            how far the orderedness may lie below the optimum: 0 for exact methods,
                   (backward_mass - lower bound) / total_mass for the heuristic
    """

    orderedness: torch.Tensor
    permutation: torch.Tensor
    backward_mass: torch.Tensor
    total_mass: torch.Tensor
    diagonal_mass: torch.Tensor
    undefined: torch.Tensor
    exact: bool
    gap: torch.Tensor

    @property
    def diagonal_fraction(self) -> torch.Tensor:
        """Self-loop mass as a fraction of the total (NaN where undefined)."""
        nan = torch.full_like(self.total_mass, float("nan"))
        safe_total = torch.where(self.undefined, 1, self.total_mass)
        return torch.where(self.undefined, nan, self.diagonal_mass / safe_total)
