"""What every model is, and the record a model family files with the registry.

A family is one file in `models/` that declares `NAME`, `SUMMARY` (string literals) and
`FAMILY = ModelFamily(...)` at its top level; the registry (models/registry.py, by the convention
of foundations/registry.py) finds it by reading the package's sources, so adding a model is adding
one file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch.nn as nn

InputShape = tuple[int, ...]  # one example: (C, H, W) for images, (features,) for tables


class Model(nn.Module):
    """A classifier: float images (N, C, H, W) in, logits (N, num_classes) out.

    Subclasses name their final classifier layer in `output_module` (every family here uses `fc`).
    """

    output_module: str = "fc"

    @property
    def prunable_layer_names(self) -> list[str]:
        """state_dict keys of every Conv2d and Linear weight: what pruning may remove by default."""
        return [f"{name}.weight" for name, module in self.named_modules()
                if isinstance(module, (nn.Conv2d, nn.Linear))]

    @property
    def output_layer_names(self) -> list[str]:
        """state_dict keys of the output layer's parameters, e.g. ['fc.weight', 'fc.bias']."""
        layer = self.get_submodule(self.output_module)
        return [f"{self.output_module}.{name}" for name, _ in layer.named_parameters()]


@dataclass(frozen=True)
class ModelFamily:
    """How one family of models is named, built and trained by default.

    `parse` turns a model name into the family's own spec (None when the name is not this
    family's); `build` makes a model from that spec with PyTorch's default init (the registry
    seeds the RNG and applies the chosen initializer afterwards); `default_hparams` gives the
    family's published recipe as per-bundle field overrides (see models/recipes.py).
    """

    pattern: str
    parse: Callable[[str], Optional[Any]]
    build: Callable[[Any, InputShape, int], Model]
    default_hparams: Callable[[str, Any], dict]
