"""The speed of a 2:4-pruned linear layer through torch's semi-structured sparse tensors
(`torch.sparse.to_sparse_semi_structured`, the sparse tensor cores) against the dense layer, in
half precision on a CUDA GPU (compute capability 8.0 or later). On a machine without one it says
so and exits 0.

    python benchmarks/semi_structured_speed.py [--batch 4096] [--features 4096]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pruning.mask import Mask  # noqa: E402
from pruning.nm import nm_mask  # noqa: E402


def milliseconds(fn, repeats: int = 50) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--features", type=int, default=4096)
    args = parser.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0):
        print("semi_structured_speed needs a CUDA GPU of compute capability 8.0 or later (sparse tensor cores); "
              "none here, so nothing was measured")
        return 0
    from torch.sparse import to_sparse_semi_structured
    torch.manual_seed(0)
    weight = torch.randn(args.features, args.features, device="cuda", dtype=torch.float16)
    alive = torch.ones_like(weight, dtype=torch.bool)
    kept = nm_mask({"w": weight.abs()}, Mask({"w": alive}), 2, 4)["w"]
    pruned = weight * kept
    x = torch.randn(args.batch, args.features, device="cuda", dtype=torch.float16)
    sparse = to_sparse_semi_structured(pruned)
    dense_ms = milliseconds(lambda: torch.nn.functional.linear(x, pruned))
    sparse_ms = milliseconds(lambda: torch.nn.functional.linear(x, sparse))
    error = (torch.nn.functional.linear(x, sparse) - torch.nn.functional.linear(x, pruned)).abs().max().item()
    print(f"{torch.cuda.get_device_name()}: linear {args.batch} x {args.features} -> {args.features}, float16")
    print(f"dense {dense_ms:.3f} ms, 2:4 semi-structured {sparse_ms:.3f} ms, speed-up dense / sparse = "
          f"{dense_ms / sparse_ms:.2f} (max difference {error:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
