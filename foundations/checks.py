"""Range checks of user-given numbers, each failing with one UserError that says what to give."""

from __future__ import annotations

import math
from typing import Optional

from foundations.errors import UserError


def check_fraction(value: Optional[float], flag: str, *, zero: bool = True, one: bool = False,
                   meaning: str = "a fraction such as 0.2") -> None:
    """A UserError unless `value` is a number in [0, 1): `zero=False` leaves 0 out, `one=True`
    lets 1 in. None (an unset optional flag) passes."""
    if value is None:
        return
    interval = ("[" if zero else "(") + "0, 1" + ("]" if one else ")")
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if not (number and (value >= 0 if zero else value > 0) and (value <= 1 if one else value < 1)):
        raise UserError(f"--{flag}={value} is outside {interval}: give {meaning}")

