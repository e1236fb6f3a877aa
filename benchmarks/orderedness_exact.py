"""Exact orderedness: the subset DP (ours) vs brute force over every hidden order (the paper's way).

Both score the same random blocks (outputs first, O = 1) on one CPU thread. The brute force is
the full enumeration, not a sample: itertools produces every order, and each chunk of orders is
scored against all blocks at once with one matrix product (vectorized, so far faster than a
Python loop per order; the ratio is therefore a conservative one). Prints figures, then
``ratio=<brute seconds / ours at H=10>`` last. The DP alone is also timed at H=20 (goal < 5 s).

Then the price of tracking orderedness at every step during training (goal < 25%): the sine
recipe (sine_complete_8, 40 epochs = 600 steps) under topk through `branch orderedness`, once
tracking every step and once only at the start and end (--track_every=600it), each in a fresh
root; the training time is done.json's seconds_this_session (the loop alone, not the nulls).

    python benchmarks/orderedness_exact.py [--blocks 8] [--repeats 3]
"""

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import open_prune  # noqa: E402
from benchmarks.timing import best_alternating  # noqa: E402
from branches.orderedness.step_rules import FLUSH_AT  # noqa: E402
from orderedness import brute_force_orderedness, exact_orderedness, heuristic_orderedness  # noqa: E402

SINE = ["--default_hparams=sine_complete_8", "--rule=topk", "--keep=0.5", "--null_samples=1", "--quiet",
        "--device=cpu"]


def seconds_per_call(measure, blocks: torch.Tensor, num_outputs: int, repeats: int = 3) -> float:
    """Best wall time of `measure(blocks, num_outputs)` over `repeats` calls (synchronizing CUDA).

    The training-time tracking benchmark calls this with exact_orderedness on the blocks it
    records, to put a price on tracking orderedness every step.
    """
    best, _ = best_alternating({"measure": lambda: measure(blocks, num_outputs)}, repeats, blocks.device)
    return best["measure"]


def random_blocks(count: int, hidden: int, seed: int) -> torch.Tensor:
    return torch.randn(count, hidden + 1, hidden + 1, generator=torch.Generator().manual_seed(seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=8, help="random blocks per size")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the best counts")
    args = parser.parse_args()
    torch.set_num_threads(1)

    ratio = float("nan")
    for hidden in (8, 10):
        blocks = random_blocks(args.blocks, hidden, seed=hidden)
        exact_orderedness(blocks, 1)  # warm-up: the cached subset layers
        ours = seconds_per_call(exact_orderedness, blocks, 1, args.repeats)
        brute = seconds_per_call(brute_force_orderedness, blocks, 1, 1 if hidden >= 10 else args.repeats)
        reference = brute_force_orderedness(blocks, 1).orderedness
        gap = (exact_orderedness(blocks, 1).orderedness - reference).abs().max()
        ratio = brute / ours
        print(f"H={hidden}: {args.blocks} blocks, ours {ours * 1e3:.2f} ms, brute force over all "
              f"{hidden}! orders {brute:.2f} s, brute/ours {ratio:.0f}x, max |difference| {gap.item():.1e}")

    blocks = random_blocks(1, 20, seed=20)
    ours = seconds_per_call(exact_orderedness, blocks, 1, repeats=1)
    exact = exact_orderedness(blocks, 1)
    heuristic = heuristic_orderedness(blocks, 1)
    print(f"H=20: one block, ours {ours:.2f} s on one CPU thread (goal < 5 s), orderedness "
          f"{exact.orderedness.item():.6f}; heuristic {heuristic.orderedness.item():.6f}, its reported gap "
          f"{heuristic.gap.item():.4f}, true shortfall {(exact.orderedness - heuristic.orderedness).item():.6f}")
    tracking_cost(args.repeats)
    print(f"ratio={ratio:.1f}")


def training_seconds(track_every: str) -> float:
    """The loop's wall time of one sine branch run in a fresh root (its trunk trained first)."""
    with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(io.StringIO()):
        flags = [*SINE, f"--track_every={track_every}", f"--root={root}"]
        if open_prune.main(["branch", "orderedness", *flags]) != 0:
            raise RuntimeError("the sine branch run failed")
        done = next(Path(root).rglob("branch_orderedness_*/done.json"))
        return json.loads(done.read_text())["seconds_this_session"]


def tracking_cost(repeats: int) -> None:
    """Tracking every step on sine as a fraction of training time, measured and from seconds_per_call."""
    pairs = [(training_seconds("1it"), training_seconds("600it")) for _ in range(max(repeats, 5))]  # interleaved
    tracked, untracked = min(p[0] for p in pairs), min(p[1] for p in pairs)
    blocks = random_blocks(FLUSH_AT, 8, seed=8)
    scoring = seconds_per_call(exact_orderedness, blocks, 1, repeats) * math.ceil(601 / FLUSH_AT)
    print(f"tracking every step on sine (600 steps): training {tracked:.2f} s tracked vs {untracked:.2f} s "
          f"(start and end only): {(tracked - untracked) / untracked:+.0%} of training time (goal < 25%); "
          f"scoring the 601 blocks in batches of {FLUSH_AT} alone takes {scoring * 1e3:.1f} ms "
          f"({scoring / untracked:.1%})")


if __name__ == "__main__":
    main()
