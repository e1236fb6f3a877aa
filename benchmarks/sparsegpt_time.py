"""SparseGPT's time for one layer: ours (lazy batch updates of `blocksize` columns) against a
straightforward implementation of the same algorithm (every column's update applied to all columns
to its right at once), on a GPU when there is one. Both give the same weights (checked here).

    python benchmarks/sparsegpt_time.py [--rows 768] [--columns 768] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pruning.post_training.sparsegpt import dampened, inverse_cholesky, sparsegpt_layer  # noqa: E402


def straightforward(weight: torch.Tensor, gram: torch.Tensor, alive: torch.Tensor, damp: float = 0.01):
    """The same updates, column by column, each applied at once to the whole rest of the matrix."""
    H, W = dampened(gram, weight, damp)
    U = inverse_cholesky(H)
    for i in range(W.shape[1]):
        q = torch.where(alive[:, i], W[:, i], torch.zeros_like(W[:, i]))
        error = (W[:, i] - q) / U[i, i]
        W[:, i:] -= error[:, None] * U[i, i:][None, :]
        W[:, i] = q
    return W


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=768)
    parser.add_argument("--columns", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(args.rows, args.columns, generator=generator).to(device)
    x = torch.randn(4 * args.columns, args.columns, generator=generator).to(device)
    gram = x.T @ x
    ours_mask = sparsegpt_layer(weight, gram, torch.ones_like(weight, dtype=torch.bool), weight.numel() // 2)[1]
    ours = min(timed(lambda: sparsegpt_layer(weight, gram, ours_mask, 0), device) for _ in range(args.repeats))
    plain = min(timed(lambda: straightforward(weight, gram, ours_mask), device) for _ in range(args.repeats))
    difference = (sparsegpt_layer(weight, gram, ours_mask, 0)[0] - straightforward(weight, gram, ours_mask)).abs().max()
    print(f"device {device}, layer {args.rows} x {args.columns}, float32, 50% (the mask fixed for both)")
    print(f"ours (lazy blocks of 128): {ours * 1e3:.1f} ms; straightforward: {plain * 1e3:.1f} ms; "
          f"ratio straightforward / ours = {plain / ours:.2f}; max weight difference {difference:.2e}")


if __name__ == "__main__":
    main()
