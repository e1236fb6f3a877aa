"""Wall-clock of RigL and SET training over static-mask training, same recipe, same model, data
and device, in one process: LeNet-300-100 on Fashion-MNIST, one epoch of SGD 0.1 at batch 128 (469
steps), an ERK random mask at density 0.1 (the output layer dense), mask updates every 100 steps
until 3/4 of training (3 updates) with the RigL code's cosine drop fraction from 0.3. The static
reference is the static MaskHook. The three run alternately, best of --repeats each; on a shared
machine the ratios carry its noise, so the cost of one drop-and-grow update is also timed alone
(median of 20) and given as the share of the static epoch that the epoch's updates add. Last lines:
rigl_ratio=<RigL / static seconds>, set_ratio=<SET / static seconds>, ratio=<the larger>. Goal <= 1.10.

    python benchmarks/sparse_training_overhead.py [--device=cuda] [--repeats=3] [--density=0.1] [--threads=1]
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import torch
from fashion_lenet import TRAINING, device_from_argv, lenet, loaders, platform
from timing import best_alternating, timed

from branches.sparse.dynamic import UpdateHparams, UpdateSteps
from branches.sparse.layers import layer_counts
from branches.sparse.rigl import GradientRegrowth
from branches.sparse.set_training import RandomRegrowth
from branches.sparse.update import drop_and_grow
from pruning.allocation import random_mask
from training.loop import train
from training.masking import MaskHook


def flag(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default)


def main() -> None:
    device = device_from_argv()
    repeats, density = int(flag("repeats", "3")), float(flag("density", "0.1"))
    torch.set_num_threads(int(flag("threads", "1")))  # one CPU thread by default: steadier on a shared machine
    train_loader, test_loader = loaders(device)
    model = lenet(device)
    counts = layer_counts(model, "erk", density, "auto", "auto")
    state = model.state_dict()
    mask = random_mask({name: tuple(state[name].shape) for name in counts}, counts, seed=0)
    steps = UpdateSteps(begin=0, end=math.floor(0.75 * len(train_loader)), every=100)
    h = UpdateHparams()

    def run(make_hook):
        with tempfile.TemporaryDirectory() as out:
            train(lenet(device), TRAINING, train_loader, test_loader, Path(out), platform=platform(device),
                  data_order_seed=0, hooks=[make_hook()])

    candidates = {
        "static": lambda: run(lambda: MaskHook(mask.to(device))),
        "set": lambda: run(lambda: RandomRegrowth(mask, None, steps, h, seed=0)),
        "rigl": lambda: run(lambda: GradientRegrowth(mask, None, steps, h)),
    }
    candidates["static"]()  # warm-up: data on the device, kernels loaded
    best, _ = best_alternating(candidates, repeats, device)
    print(f"device={device} threads={torch.get_num_threads()} density={mask.density:.3f} "
          f"steps/epoch={len(train_loader)} updates at {[t for t in range(1, steps.end + 1) if t in steps]}")
    print("epoch seconds (best of %d): " % repeats + ", ".join(f"{k} {v:.3f}" for k, v in best.items()))
    weights = {name: model.get_parameter(name).detach() for name in counts}
    scores = {name: torch.rand_like(weight) for name, weight in weights.items()}
    masks = {name: tensor.to(device) for name, tensor in mask.items()}

    def one_update():
        for name in weights:
            drop_and_grow(weights[name], masks[name], h.drop_fraction, scores[name])

    update_s = sorted(timed(one_update, device) for _ in range(20))[10]
    updates = sum(1 for t in range(1, steps.end + 1) if t in steps)
    print(f"one update (all layers): {1000 * update_s:.1f} ms; {updates} updates add "
          f"{100 * updates * update_s / best['static']:.2f}% to the static epoch")
    print(f"rigl_ratio={best['rigl'] / best['static']:.3f}")
    print(f"set_ratio={best['set'] / best['static']:.3f}")
    print(f"ratio={max(best['rigl'], best['set']) / best['static']:.3f}")


if __name__ == "__main__":
    main()
