"""Shared setup for the trainer benchmarks: Fashion-MNIST and LeNet-300-100 through open_prune's
own registries, on one device."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets.registry as datasets_registry  # noqa: E402
import models.registry as models_registry  # noqa: E402
from foundations.bundles import TrainingHparams  # noqa: E402
from platforms.platform import Platform  # noqa: E402

BATCH = 128
TRAINING = TrainingHparams("sgd", 0.1, "1ep")


def device_from_argv() -> torch.device:
    name = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--device=")), None)
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def loaders(device: torch.device, dataset_root: Path = Path.home() / "open_prune_datasets"):
    h = SimpleNamespace(dataset_name="fashionmnist", batch_size=BATCH, do_not_augment=True, transformation_seed=0,
                        subsample_fraction=None, random_labels_fraction=None)
    return tuple(datasets_registry.get(h, train, root=dataset_root, device=device) for train in (True, False))


def lenet(device: torch.device, seed: int = 0) -> torch.nn.Module:
    h = SimpleNamespace(model_name="fashionmnist_lenet_300_100", model_init="kaiming_normal", batchnorm_init="uniform",
                        batchnorm_frozen=False, output_frozen=False)
    return models_registry.get(h, (1, 28, 28), 10, seed=seed).to(device)


def platform(device: torch.device) -> Platform:
    return Platform(root=Path("/tmp"), dataset_root=Path("/tmp"), device=device, quiet=True)
