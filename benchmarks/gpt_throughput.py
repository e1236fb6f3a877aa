"""Training tokens per second of open_prune's loop against a minimal hand-written torch loop on the
same GPT (fortunes_gpt_2_64_c64 of models/gpt.py by default: windows of 64 byte tokens, batch 32,
its recipe: AdamW, weight decay 0.1, linear warmup then cosine to 0, N(0, 0.02) init) for --steps
iterations (default 300) and a test-split evaluation before and after, on the fortunes corpus, on
the same device, in one process. Both draw random windows of the training split; the hand-written
loop draws them with one torch.randint per batch. Last line: ratio=<ours / hand-written tokens per
second>. Target: >= 0.95.

    python benchmarks/gpt_throughput.py [--device=cuda] [--repeats=3] [--steps=300] [--model=NAME]
                                        [--threads=N] [--dataset_root=~/open_prune_datasets]
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from fashion_lenet import device_from_argv, platform
from timing import median_of_alternating

import datasets.registry as datasets_registry
import models.registry as models_registry
from foundations.bundles import DatasetHparams, TrainingHparams
from models import gpt as gpt_family
from training.loop import train

LR, WEIGHT_DECAY, BATCH = 1e-3, 0.1, 32


def option(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default)


def gpt(name: str, device: torch.device, seed: int = 0) -> torch.nn.Module:
    h = SimpleNamespace(model_name=name, model_init="normal", init_std=0.02, bias_init="zero",
                        batchnorm_init="uniform", batchnorm_frozen=False, output_frozen=False)
    return models_registry.get(h, (gpt_family.parse(name).context,), 256, seed=seed).to(device)


def schedule(iteration: int, warmup: int, steps: int) -> float:
    """Linear warmup from 0, then cosine from LR to 0 (the loop's schedule, written out)."""
    done = min(max(iteration - warmup, 0), steps - warmup) / max(steps - warmup, 1)
    lr = LR * 0.5 * (1.0 + math.cos(math.pi * done))
    return lr * iteration / warmup if iteration < warmup else lr


def hand_written(model, train_tokens: torch.Tensor, test_tokens: torch.Tensor, context: int, steps: int,
                 warmup: int) -> None:
    """The least the same training can be: draw window starts, gather, forward, backward, step; the
    evaluation over the test split's non-overlapping windows in batches of BATCH, as the loop's."""
    offsets = torch.arange(context, device=train_tokens.device)

    def evaluate():
        windows = (test_tokens.numel() - 1) // context
        with torch.no_grad():
            model.eval()
            for start in range(0, windows, BATCH):
                positions = torch.arange(start, min(start + BATCH, windows), device=test_tokens.device)[:, None]
                positions = positions * context + offsets
                logits = model(test_tokens[positions].long())
                F.cross_entropy(logits.flatten(0, 1), test_tokens[positions + 1].long().flatten(), reduction="sum")
                logits.argmax(-1).eq(test_tokens[positions + 1]).sum()
            model.train()

    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, foreach=True)
    generator = torch.Generator().manual_seed(0)
    evaluate()
    for iteration in range(steps):
        starts = torch.randint(0, train_tokens.numel() - context, (BATCH,), generator=generator)
        positions = starts.to(train_tokens.device)[:, None] + offsets
        for group in optimizer.param_groups:
            group["lr"] = schedule(iteration, warmup, steps)
        logits = model(train_tokens[positions].long())
        loss = F.cross_entropy(logits.flatten(0, 1), train_tokens[positions + 1].long().flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    evaluate()


def main() -> None:
    device = device_from_argv()
    if option("threads", ""):
        torch.set_num_threads(int(option("threads", "")))
    name = option("model", "fortunes_gpt_2_64_c64")
    spec = gpt_family.parse(name)
    if spec is None:
        raise SystemExit(f"--model={name} is not a GPT name: e.g. fortunes_gpt_2_64_c64")
    context = spec.context
    root = Path(option("dataset_root", str(Path.home() / "open_prune_datasets"))).expanduser()
    h = DatasetHparams(dataset_name="fortunes", batch_size=BATCH, context_length=context, transformation_seed=0)
    train_loader, test_loader = (datasets_registry.get(h, split, root=root, device=device)
                                 for split in ("train", "test"))
    repeats, steps = int(option("repeats", "3")), int(option("steps", "300"))
    if steps > len(train_loader):
        raise SystemExit(f"--steps={steps}: at most one epoch, {len(train_loader)} steps")
    warmup = max(steps // 20, 1)
    training = TrainingHparams(optimizer_name="adamw", lr=LR, training_steps=f"{steps}it", weight_decay=WEIGHT_DECAY,
                               warmup_steps=f"{warmup}it", lr_schedule="cosine")

    def ours():
        with tempfile.TemporaryDirectory() as out:
            train(gpt(name, device), training, train_loader, test_loader, Path(out), platform=platform(device),
                  data_order_seed=0)

    def reference():
        hand_written(gpt(name, device), train_loader.tokens, test_loader.tokens, context, steps, warmup)

    ours_s, reference_s = median_of_alternating(ours, reference, device, repeats)
    seen = steps * BATCH * context
    print(f"device={device} threads={torch.get_num_threads()} model={name} steps={steps} batch={BATCH} "
          f"context={context} (plus one test-split evaluation before and after, in both)")
    print(f"tokens/s: open_prune {seen / ours_s:.0f}, hand-written loop {seen / reference_s:.0f} "
          f"(median of {repeats})")
    print(f"ratio={reference_s / ours_s:.3f}")


if __name__ == "__main__":
    main()
