"""When the sparse-training branches change their masks, and by how much: pure functions of the
iteration, so a resumed run needs no state to know them.

Gradual magnitude pruning (Zhu & Gupta 2017, eq. 1): pruning steps t0, t0 + dt, ..., t0 + n dt, at
which the density is d_t = d_f + (d_i - d_f) (1 - (t - t0) / (n dt))^3 (the paper writes it for the
sparsity s = 1 - d; the same cubic). Dynamic sparse training (SET, RigL; Evci et al. 2020): an update
every dT steps from `begin` while t <= `end`, dropping the fraction
f(t) = f0 / 2 * (1 + cos(pi * (t - begin) / (end - begin))) of each layer's active weights (the RigL
code's `cosine` drop-fraction anneal).
"""

from __future__ import annotations

import math


def gmp_steps(begin: int, end: int, every: int) -> list[int]:
    """The pruning steps t0, t0 + dt, ... up to `end` (the last pruning step is the last multiple
    of dt from t0 not beyond `end`; the schedule's n dt is that span)."""
    if every <= 0:
        raise ValueError("the pruning interval must be at least one step")
    return list(range(begin, end + 1, every))


def gmp_density(iteration: int, begin: int, end: int, every: int, initial: float, final: float) -> float:
    """The cubic schedule's density at `iteration` (constant between pruning steps: the value of
    the last pruning step at or before it; `initial` before the first, `final` from the last on)."""
    steps = gmp_steps(begin, end, every)
    if iteration < steps[0]:
        return 1.0
    span = steps[-1] - steps[0]
    last = max(step for step in steps if step <= iteration)
    progress = 1.0 if span == 0 else (last - begin) / span
    return final + (initial - final) * (1.0 - progress) ** 3


def is_update_step(iteration: int, begin: int, end: int, every: int) -> bool:
    """Whether the dynamic mask changes after the optimizer step that made `iteration` steps:
    every `every` steps from `begin` (excluded: nothing is trained yet) while not after `end`."""
    return begin < iteration <= end and (iteration - begin) % every == 0


def drop_fraction(iteration: int, begin: int, end: int, initial: float, anneal: str = "cosine") -> float:
    """The fraction of each layer's active weights dropped at an update step."""
    if anneal == "constant" or end <= begin:
        return initial
    done = min(max(iteration - begin, 0), end - begin) / (end - begin)
    return initial * 0.5 * (1.0 + math.cos(math.pi * done))
