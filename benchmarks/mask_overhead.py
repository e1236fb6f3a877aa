"""Masked against dense training throughput with open_prune's trainer, same model, data and device,
in one process: LeNet-300-100 on Fashion-MNIST (default), or ResNet-20 on CIFAR-10-shaped data
(`--model=resnet20`, meant for a GPU). Last line: ratio=<masked / dense throughput>. Target >= 0.95.

    python benchmarks/mask_overhead.py [--device=cuda] [--model=resnet20] [--repeats=5]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
from fashion_lenet import TRAINING, device_from_argv, lenet, loaders, platform
from timing import median_of_alternating

import models.registry as models_registry
from datasets.memory_loader import InMemoryLoader
from pruning import ScoringData, prune_in_rounds
from training.loop import train
from training.masking import MaskHook


def flag(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default)


def resnet20_setup(device):
    """ResNet-20 on random CIFAR-shaped uint8 images held on the device (the data's content does not
    change the cost of a step)."""
    generator = torch.Generator().manual_seed(0)
    def split(n):
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator).to(device)
        labels = torch.randint(0, 10, (n,), generator=generator).to(device)
        return InMemoryLoader(images, labels, num_classes=10, batch_size=128, mean=(0.5,) * 3, std=(0.25,) * 3,
                              transformation_seed=0, augment_padding=4)
    h = SimpleNamespace(model_name="cifar_resnet_20", model_init="kaiming_normal", batchnorm_init="uniform",
                        batchnorm_frozen=False, output_frozen=False)
    return split(10_000), split(1_000), lambda: models_registry.get(h, (3, 32, 32), 10, seed=0).to(device)


def main() -> None:
    device = device_from_argv()
    repeats = int(flag("repeats", "5"))
    if flag("model", "lenet") == "resnet20":
        train_loader, test_loader, build = resnet20_setup(device)
    else:
        train_loader, test_loader = loaders(device)
        def build():
            return lenet(device)
    mask = prune_in_rounds(build(), "random", 0.8, 1, data=ScoringData(seed=0))  # 80% of the weights removed

    def run(hooks):
        with tempfile.TemporaryDirectory() as out:
            train(build(), TRAINING, train_loader, test_loader, Path(out), platform=platform(device),
                  data_order_seed=0, hooks=hooks)

    masked_s, dense_s = median_of_alternating(lambda: run([MaskHook(mask)]), lambda: run([]), device, repeats)
    print(f"device={device} model={flag('model', 'lenet')} density={mask.density:.3f} steps/epoch={len(train_loader)}")
    print(f"epoch seconds: masked {masked_s:.3f}, dense {dense_s:.3f} (median of {repeats})")
    print(f"ratio={dense_s / masked_s:.3f}")


if __name__ == "__main__":
    main()
