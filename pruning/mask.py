"""Mask: which prunable weights are still alive.

A mask is a dict from a weight's state_dict name to a bool tensor of the weight's shape (True =
unpruned). Only the weights a model lists in `prunable_layer_names` are covered; everything else
(biases, norms) is never pruned. On disk it is `mask.pt` (a plain dict of bool tensors, loadable
with `torch.load(weights_only=True)`) next to `sparsity.json` (total and per-layer counts).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from foundations import paths
from foundations.errors import UserError
from platforms.storage import load_torch, save_torch, write_json
from pruning.validate import considered_layers

SHUFFLE_SCOPES = ("layerwise", "global")


def count_true(tensors: list[torch.Tensor]) -> list[int]:
    """The number of True entries of each tensor, gathered on one device with one host sync."""
    if not tensors:
        return []
    device = tensors[0].device
    return torch.stack([t.count_nonzero().to(device) for t in tensors]).tolist()


class UnreadableMask(UserError):
    """A mask.pt that is missing, truncated or not a dict of bool tensors."""


class Mask:
    """An immutable-by-convention map from prunable weight names to bool tensors (True = kept)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        for name, tensor in tensors.items():
            if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.bool:
                kind = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise ValueError(f"mask entry {name!r} must be a bool tensor, got {kind}")
        self._tensors = dict(tensors)

    @classmethod
    def ones_like(cls, model: nn.Module) -> Mask:
        """A dense mask over `model.prunable_layer_names`, on the weights' device."""
        state = model.state_dict()
        names = list(model.prunable_layer_names)
        missing = [name for name in names if name not in state]
        if missing:
            raise ValueError(f"prunable_layer_names {missing} are not state_dict keys of "
                             f"{type(model).__name__}")
        return cls({name: torch.ones_like(state[name], dtype=torch.bool) for name in names})

    # ---- dict-like access -------------------------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._tensors)

    def items(self) -> Iterable[tuple[str, torch.Tensor]]:
        return self._tensors.items()

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask) or self.keys() != other.keys():
            return False
        return all(torch.equal(self[n], other[n].to(self[n].device)) for n in self)

    def __repr__(self) -> str:
        return f"Mask({len(self)} layers, density={self.density:.4f})"

    def to(self, device: torch.device | str) -> Mask:
        return Mask({name: tensor.to(device) for name, tensor in self.items()})

    # ---- counts -----------------------------------------------------------------------------
    @property
    def num_total(self) -> int:
        return sum(tensor.numel() for tensor in self._tensors.values())

    @property
    def num_unpruned(self) -> int:
        return sum(counts["unpruned"] for counts in self.layer_counts().values())

    @property
    def density(self) -> float:
        total = self.num_total
        return self.num_unpruned / total if total else 1.0

    def layer_counts(self) -> dict[str, dict[str, int]]:
        """{name: {"total": numel, "unpruned": kept}} for every layer, with one host sync."""
        kept = count_true(list(self._tensors.values()))
        return {name: {"total": t.numel(), "unpruned": k} for (name, t), k in zip(self.items(), kept)}

    def report(self) -> dict:
        """What sparsity.json holds: overall counts, density, and per-layer counts."""
        layers = self.layer_counts()
        total = sum(c["total"] for c in layers.values())
        unpruned = sum(c["unpruned"] for c in layers.values())
        return {"total": total, "unpruned": unpruned, "density": unpruned / total if total else 1.0,
                "layers": layers}

    # ---- files ------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write sparsity.json, then mask.pt (last, so its existence means both are complete)."""
        directory = Path(directory)
        write_json(self.report(), directory / paths.SPARSITY)
        save_torch({name: tensor.detach().cpu() for name, tensor in self.items()}, directory / paths.MASK)

    def save_if_changed(self, directory: Path) -> None:
        """Write mask.pt and sparsity.json unless readable ones are there already (a damaged
        sparsity.json is rewritten from the mask on disk)."""
        directory = Path(directory)
        try:
            stored = Mask.load(directory)
        except Exception:  # missing, truncated or foreign: (re)write both
            self.save(directory)
            return
        try:
            json.loads((directory / paths.SPARSITY).read_text())["density"]
        except (OSError, ValueError, KeyError, TypeError):
            write_json(stored.report(), directory / paths.SPARSITY)

    @classmethod
    def read(cls, path: Path) -> Mask:
        """The mask in a mask.pt file; UnreadableMask when it is missing, truncated or foreign."""
        try:
            tensors = load_torch(path)
        except FileNotFoundError:
            raise UnreadableMask(f"{path} does not exist") from None
        except Exception as error:  # truncated, or not a torch file at all
            with open(path, "rb") as handle:
                start = handle.read(2)
            if start not in (b"PK", b"\x80\x02"):  # torch.save writes a zip archive (old ones: a pickle)
                raise UnreadableMask(f"{path} is not a mask: masks are mask.pt files written by torch.save (dicts "
                                     f"of bool tensors), and this is not a torch file") from None
            raise UnreadableMask(f"{path} cannot be read as a mask ({type(error).__name__}); is it a half-written "
                                 f"file?") from None
        if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.bool
                                                   for t in tensors.values()):
            raise UnreadableMask(f"{path} is not a mask (a dict of bool tensors)")
        return cls(tensors)

    @classmethod
    def load(cls, directory: Path) -> Mask:
        """The mask saved in a run directory (UnreadableMask when it cannot be read)."""
        return cls.read(Path(directory) / paths.MASK)

    @classmethod
    def load_if_readable(cls, directory: Path) -> Optional[Mask]:
        """The mask saved in `directory`, or None when there is none or it is damaged (saying so):
        every saved mask is a deterministic function of its inputs, so the caller recomputes it."""
        if not cls.exists(directory):
            return None
        try:
            return cls.load(directory)
        except UnreadableMask:
            print(f"open_prune: {Path(directory) / paths.MASK} is unreadable; recomputing the mask", file=sys.stderr)
            return None

    @staticmethod
    def exists(directory: Path) -> bool:
        return (Path(directory) / paths.MASK).exists()

    # ---- shuffles ---------------------------------------------------------------------------
    def shuffled(self, scope: str, seed: int, layers_to_ignore: Iterable[str] = ()) -> Mask:
        """The same counts at random places: 'layerwise' keeps every layer's count, 'global' only
        the total over the shuffled layers. Layers in `layers_to_ignore` are left as they are.
        The permutation is drawn on the CPU from `seed`, so it is the same on every device."""
        if scope not in SHUFFLE_SCOPES:
            raise UserError(f"shuffle scope {scope!r} is unknown: use one of {', '.join(SHUFFLE_SCOPES)}")
        names = considered_layers(self.keys(), layers_to_ignore)
        generator = torch.Generator().manual_seed(seed)
        groups = [[name] for name in names] if scope == "layerwise" else [names]
        result = dict(self._tensors)
        for group in groups:
            if not group:
                continue
            flat = torch.cat([self[name].reshape(-1) for name in group])
            permuted = flat[torch.randperm(flat.numel(), generator=generator).to(flat.device)]
            pieces = permuted.split([self[name].numel() for name in group])
            result.update({name: piece.view_as(self[name]) for name, piece in zip(group, pieces)})
        return Mask(result)
