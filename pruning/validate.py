"""Checks of user-given pruning settings, each failing with a UserError that says what to do."""

from __future__ import annotations

from collections.abc import Iterable

from foundations.checks import check_fraction
from foundations.errors import UserError

# global: one ranking over all layers; layerwise: each layer loses the same fraction; the others are
# allocations (pruning/rounds.ALLOCATIONS): erk, per layer at Erdős–Rényi-Kernel densities, and
# lamp, one ranking by LAMP score (pruning/allocation.py). Each branch's --prune_scope offers them all.
SCOPES = ("global", "layerwise", "erk", "lamp", "owl")


def check_prune_fraction(fraction: float, flag: str = "prune_fraction") -> None:
    check_fraction(fraction, flag, meaning="the fraction of the remaining weights to remove")


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise UserError(f"prune_scope={scope!r} is unknown: use one of {', '.join(SCOPES)}")


def check_iterations(iterations: int) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise UserError(f"prune_iterations={iterations!r} is invalid: give a whole number of rounds >= 1")


def considered_layers(names: Iterable[str], layers_to_ignore: Iterable[str]) -> list[str]:
    """`names` (in order) without `layers_to_ignore`, each of which must be one of `names`."""
    names = list(names)
    if isinstance(layers_to_ignore, str):
        layers_to_ignore = [layers_to_ignore] if layers_to_ignore else []
    ignored = set(layers_to_ignore)
    unknown = sorted(ignored - set(names))
    if unknown:
        raise UserError(f"prune_layers_to_ignore names unknown layer(s) {', '.join(unknown)}; "
                        f"valid names are: {', '.join(names)}")
    return [name for name in names if name not in ignored]
