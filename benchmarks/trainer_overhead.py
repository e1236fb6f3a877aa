"""One epoch of open_prune's trainer against a minimal hand-written torch loop doing the same
work (Fashion-MNIST, LeNet-300-100, batch 128, SGD, a test-set evaluation before and after), on the
same data and device, in one process. Last line: ratio=<ours / hand-written>. Target: <= 1.10.

    python benchmarks/trainer_overhead.py [--device=cuda] [--repeats=5]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from fashion_lenet import TRAINING, device_from_argv, lenet, loaders, platform
from timing import median_of_alternating

from training.loop import train


def hand_written_epoch(model, images, labels, test_images, test_labels, batch: int) -> None:
    """The least a training epoch can be: index batches, forward, backward, step."""
    def evaluate():
        with torch.no_grad():
            for start in range(0, test_images.shape[0], 1000):
                model(test_images[start:start + 1000]).argmax(1).eq(test_labels[start:start + 1000]).sum()

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, foreach=True)
    evaluate()
    order = torch.randperm(images.shape[0], device=images.device)
    for start in range(0, images.shape[0], batch):
        index = order[start:start + batch]
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    evaluate()


def main() -> None:
    device = device_from_argv()
    repeats = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--repeats=")), 5))
    train_loader, test_loader = loaders(device)
    images, labels = train_loader.normalize(train_loader.images), train_loader.labels
    test_images, test_labels = test_loader.normalize(test_loader.images), test_loader.labels

    def ours():
        with tempfile.TemporaryDirectory() as out:
            train(lenet(device), TRAINING, train_loader, test_loader, Path(out), platform=platform(device),
                  data_order_seed=0)

    def reference():
        hand_written_epoch(lenet(device), images, labels, test_images, test_labels, train_loader.batch_size)

    ours_s, reference_s = median_of_alternating(ours, reference, device, repeats)
    print(f"device={device} threads={torch.get_num_threads()} steps/epoch={len(train_loader)}")
    print(f"epoch seconds: open_prune {ours_s:.3f}, hand-written loop {reference_s:.3f} (median of {repeats})")
    print(f"ratio={ours_s / reference_s:.3f}")


if __name__ == "__main__":
    main()
