"""Mean, standard deviation and a Student-t confidence interval over replicates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float    # sample standard deviation (ddof=1); NaN for fewer than two values
    low: float    # the confidence interval of the mean; NaN for fewer than two values
    high: float

    def text(self, digits: int = 4) -> str:
        """'0.9012 ± 0.0031' (or the mean alone with one value, '-' with none)."""
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}f} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def interval(self, digits: int = 4) -> str:
        if self.n < 2:
            return "-"
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def cell(self) -> str:
        """One table cell: '0.9012 ± 0.0031 [0.8974, 0.9050]', the interval only where there is one."""
        return f"{self.text()} {self.interval()}" if self.n > 1 else self.text()


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Summary of the finite values: the interval is mean ± t(confidence, n-1) · std / sqrt(n)."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(data.size)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)
