"""Training images per second of open_prune's loop against a minimal hand-written torch loop on the
same ViT (fashionmnist_vit_4_64_p7 of models/vit.py, batch 128, its recipe: AdamW, weight decay
0.05, linear warmup then cosine, label smoothing 0.1, for --steps iterations (default one epoch, 469)
and a test-set evaluation before and after), on the same data and device, in one process. Last line:
ratio=<ours / hand-written images per second>. Target: >= 0.95.

    python benchmarks/vit_throughput.py [--device=cuda] [--repeats=3] [--steps=469] [--model=NAME]
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from fashion_lenet import device_from_argv, loaders, platform
from timing import median_of_alternating

import models.registry as models_registry
from foundations.bundles import TrainingHparams
from training.loop import train

LR, WEIGHT_DECAY, SMOOTHING = 1e-3, 0.05, 0.1


def option(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default)


def vit(name: str, device: torch.device, seed: int = 0) -> torch.nn.Module:
    h = SimpleNamespace(model_name=name, model_init="pytorch", batchnorm_init="uniform", batchnorm_frozen=False,
                        output_frozen=False)
    return models_registry.get(h, (1, 28, 28), 10, seed=seed).to(device)


def schedule(iteration: int, warmup: int, steps: int) -> float:
    """Linear warmup from 0, then cosine from LR to 0 (the loop's schedule, written out)."""
    done = min(max(iteration - warmup, 0), steps - warmup) / max(steps - warmup, 1)
    lr = LR * 0.5 * (1.0 + math.cos(math.pi * done))
    return lr * iteration / warmup if iteration < warmup else lr


def hand_written(model, images, labels, test_images, test_labels, batch: int, steps: int, warmup: int) -> None:
    """The least the same training can be: index batches, forward, backward, step; the evaluation in
    the test loader's batches, as the loop's (a ViT on the CPU runs batches of 1000 slower per image)."""
    def evaluate():
        with torch.no_grad():
            model.eval()
            for start in range(0, test_images.shape[0], batch):
                model(test_images[start:start + batch]).argmax(1).eq(test_labels[start:start + batch]).sum()
            model.train()

    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, foreach=True)
    evaluate()
    order = torch.randperm(images.shape[0], device=images.device)
    for iteration in range(steps):
        index = order[iteration * batch:(iteration + 1) * batch]
        for group in optimizer.param_groups:
            group["lr"] = schedule(iteration, warmup, steps)
        loss = F.cross_entropy(model(images[index]), labels[index], label_smoothing=SMOOTHING)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    evaluate()


def main() -> None:
    device = device_from_argv()
    name = option("model", "fashionmnist_vit_4_64_p7")
    train_loader, test_loader = loaders(device)
    repeats, steps = int(option("repeats", "3")), int(option("steps", str(len(train_loader))))
    if steps > len(train_loader):
        raise SystemExit(f"--steps={steps}: at most one epoch, {len(train_loader)} steps")
    warmup = max(steps // 10, 1)
    images, labels = train_loader.normalize(train_loader.images), train_loader.labels
    test_images, test_labels = test_loader.normalize(test_loader.images), test_loader.labels
    training = TrainingHparams(optimizer_name="adamw", lr=LR, training_steps=f"{steps}it", weight_decay=WEIGHT_DECAY,
                               warmup_steps=f"{warmup}it", lr_schedule="cosine", label_smoothing=SMOOTHING)

    def ours():
        with tempfile.TemporaryDirectory() as out:
            train(vit(name, device), training, train_loader, test_loader, Path(out), platform=platform(device),
                  data_order_seed=0)

    def reference():
        hand_written(vit(name, device), images, labels, test_images, test_labels, train_loader.batch_size, steps,
                     warmup)

    ours_s, reference_s = median_of_alternating(ours, reference, device, repeats)
    seen = steps * train_loader.batch_size
    print(f"device={device} threads={torch.get_num_threads()} model={name} steps={steps} batch="
          f"{train_loader.batch_size} (plus one test-set evaluation before and after, in both)")
    print(f"images/s: open_prune {seen / ours_s:.1f}, hand-written loop {seen / reference_s:.1f} "
          f"(median of {repeats})")
    print(f"ratio={reference_s / ours_s:.3f}")


if __name__ == "__main__":
    main()
