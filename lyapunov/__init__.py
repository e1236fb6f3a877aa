"""Batched chaos and causality statistics over tensors: Rosenstein's largest Lyapunov exponent
for many series at once, windowed over recorded trajectories, and Granger causality of many
candidate series on one effect series, and MATLAB's ischange(x, 'mean') change points. Pure math on
any device; no runs, no files."""

from lyapunov.change_points import has_change_point, ischange_mean
from lyapunov.granger import (
    GrangerResult,
    GrangerStatistic,
    benjamini_hochberg,
    granger_min_p,
    granger_tests,
    largest_lag,
)
from lyapunov.rosenstein import LyapunovResult, largest_lyapunov, min_series_length
from lyapunov.windows import WindowedExponents, window_starts, window_stride, windowed_exponents

__all__ = [
    "GrangerResult",
    "GrangerStatistic",
    "LyapunovResult",
    "WindowedExponents",
    "benjamini_hochberg",
    "granger_min_p",
    "granger_tests",
    "has_change_point",
    "ischange_mean",
    "largest_lag",
    "largest_lyapunov",
    "min_series_length",
    "window_starts",
    "window_stride",
    "windowed_exponents",
]
