"""Seconds per candidate series: batched Granger tests (ours) vs statsmodels in a loop.

Every candidate x_b is tested against one effect series y for lags 1..maxlag; statsmodels'
``grangercausalitytests`` is called once per candidate on a subset (it is slow), ours once on
all of them. Prints a few lines of figures, then ``ratio=<statsmodels s/series ÷ ours>`` last.

    python benchmarks/granger_vs_statsmodels.py [--device cpu] [--series 10000] [--threads N]

CPU threads: by default ours is timed single-threaded (statsmodels' own condition) and with
torch's default thread count; the ratio line is the latter.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.timing import best_alternating  # noqa: E402
from lyapunov.granger import granger_tests  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--series", type=int, default=10_000, help="candidate series for ours")
    parser.add_argument("--statsmodels_series", type=int, default=40, help="statsmodels' subset, per round")
    parser.add_argument("--n", type=int, default=60, help="points per series")
    parser.add_argument("--maxlag", type=int, default=14)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the best of each side counts")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: 1 and torch's default)")
    args = parser.parse_args()
    thread_counts = [args.threads] if args.threads else sorted({1, torch.get_num_threads()})

    generator = np.random.default_rng(0)
    y = generator.standard_normal(args.n)
    xs = generator.standard_normal((args.series, args.n))
    xs[: args.series // 2, 2:] += 0.5 * y[:-2]  # half of them drive y two steps ahead
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    x_t, y_t = torch.tensor(xs, dtype=dtype, device=device), torch.tensor(y, dtype=dtype, device=device)

    from statsmodels.tsa.stattools import grangercausalitytests

    subset = xs[: args.statsmodels_series]
    granger_tests(x_t[:10], y_t, args.maxlag)  # warm-up
    def with_threads(threads: int):
        return lambda: torch.set_num_threads(threads) or granger_tests(x_t, y_t, args.maxlag)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, results = best_alternating(
            {"statsmodels": lambda: [grangercausalitytests(np.column_stack([y, x]), args.maxlag) for x in subset],
             **{threads: with_threads(threads) for threads in thread_counts}}, args.repeats, device)
    reference, result = results["statsmodels"], results[thread_counts[-1]]
    ours_best = {threads: best[threads] for threads in thread_counts}
    reference_per_series = best["statsmodels"] / len(subset)

    lags = range(1, args.maxlag + 1)
    expected = np.array([[r[lag][0]["ssr_chi2test"][1] for lag in lags] for r in reference])
    gap = np.abs(result.ssr_chi2test.pvalue[: len(subset)].cpu().double().numpy() - expected).max()
    print(f"max |ours - statsmodels| ssr_chi2test p-value on the subset: {gap:.2e}")
    print(f"device={device} series={args.series} n={args.n} maxlag={args.maxlag} {args.dtype}")
    print(f"statsmodels: {reference_per_series * 1e3:.2f} ms/series ({len(subset)} series)")
    for threads in thread_counts:
        per_series = ours_best[threads] / args.series
        print(f"ours, {threads} CPU thread(s): {per_series * 1e6:.2f} us/series, "
              f"{1 / per_series:,.0f} series/s, "
              f"{reference_per_series / per_series:.1f}x")
    print(f"ratio={reference_per_series * args.series / ours_best[thread_counts[-1]]:.1f}")


if __name__ == "__main__":
    main()
