"""Seconds per window: batched Rosenstein exponents (ours) vs nolds.lyap_r called in a loop.

Both see the same random windows and the same parameters; nolds is timed on a subset (it is
slow), ours on all of them. Prints a few lines of figures, then ``ratio=<nolds s/window ÷ ours>``
as the last line. On a GPU, pass ``--device cuda --windows 1000000`` for windows/s at scale.

    python benchmarks/lyapunov_vs_nolds.py [--device cpu] [--windows 10000] [--threads N]
        [--dtype float32] [--neighbours tisean --fit diff --trajectory_len 4]

CPU threads: by default ours is timed single-threaded (nolds' own condition) and with torch's
default thread count; the ratio line is the latter. A machine busy with other work slows
multi-threaded torch far more than one thread: compare the two lines.

Ours is ``largest_lyapunov``'s default backend (on the CPU, the compiled loop); the tensor
passes (``backend="tensor"``, what runs on a GPU) are timed beside it at the same thread count,
for reference.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.timing import best_alternating  # noqa: E402
from lyapunov.rosenstein import largest_lyapunov  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--windows", type=int, default=10_000, help="windows for ours")
    parser.add_argument("--nolds_windows", type=int, default=200, help="subset timed with nolds, per round")
    parser.add_argument("--length", type=int, default=50, help="points per window")
    parser.add_argument("--trajectory_len", type=int, default=20)
    parser.add_argument("--fit", default="poly", help="ours only; nolds always fits 'poly'")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--neighbours", default="nolds", choices=["nolds", "tisean"], help="ours only")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best of each side counts")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: 1 and torch's default)")
    args = parser.parse_args()
    thread_counts = [args.threads] if args.threads else sorted({1, torch.get_num_threads()})

    params = dict(emb_dim=2, lag=1, min_tsep=0, trajectory_len=args.trajectory_len)
    generator = np.random.default_rng(0)
    windows = generator.standard_normal((args.windows, args.length)).cumsum(axis=1)  # random walks
    device = torch.device(args.device)
    x = torch.tensor(windows, dtype=getattr(torch, args.dtype), device=device)

    import nolds

    subset = windows[: args.nolds_windows]
    ours_options = dict(fit=args.fit, neighbours=args.neighbours, **params)
    largest_lyapunov(x[:100], **ours_options)  # warm-up (kernels, allocator)
    def with_threads(threads: int, backend: str = "auto"):
        return lambda: torch.set_num_threads(threads) or largest_lyapunov(x, backend=backend, **ours_options)

    references = {}
    if device.type == "cpu":
        largest_lyapunov(x[:100], backend="tensor", **ours_options)
        references["tensor"] = with_threads(thread_counts[-1], "tensor")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, results = best_alternating(
            {"nolds": lambda: [nolds.lyap_r(w, fit="poly", **params) for w in subset],
             **{threads: with_threads(threads) for threads in thread_counts}, **references}, args.repeats, device)
    reference, result = results["nolds"], results[thread_counts[-1]]
    ours_best = {threads: best[threads] for threads in thread_counts}
    nolds_per_window = best["nolds"] / len(subset)

    if args.fit == "poly" and args.dtype == "float64" and args.neighbours == "nolds":
        gap = np.abs(result.exponent[: len(subset)].cpu().numpy() - np.array(reference)).max()
        print(f"max |ours - nolds| on the subset: {gap:.2e}")
    print(f"device={device} windows={args.windows} length={args.length} {params} fit={args.fit} "
          f"neighbours={args.neighbours} {args.dtype}")
    print(f"nolds: {nolds_per_window * 1e6:.1f} us/window ({len(subset)} windows)")
    for threads in thread_counts:
        per_window = ours_best[threads] / args.windows
        print(f"ours, {threads} CPU thread(s): {per_window * 1e6:.2f} us/window, "
              f"{1 / per_window:,.0f} windows/s, "
              f"{nolds_per_window / per_window:.1f}x")
    if references:
        per_window = best["tensor"] / args.windows
        print(f"tensor passes (backend='tensor'), {thread_counts[-1]} CPU thread(s): {per_window * 1e6:.2f} us/window, "
              f"{nolds_per_window / per_window:.1f}x")
    print(f"ratio={nolds_per_window * args.windows / ours_best[thread_counts[-1]]:.1f}")


if __name__ == "__main__":
    main()
