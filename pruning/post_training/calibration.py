"""Calibration data and the step-by-step capture that Wanda, SparseGPT and OWL read it through.

Calibration examples are drawn from the training split, seeded: for a corpus, windows of the
context length at starts drawn from (seed, "calibration") alone (the papers' 128 random windows of
C4); for an in-memory image or table set, examples at a seeded permutation, unaugmented; for any
other loader, the first examples of the seeded epoch order.

A *step* is what the papers call a block: the unit whose layers are pruned together from inputs
captured with the steps before it already pruned. A model that holds its sequential blocks in an
`nn.ModuleList` named `blocks` (the GPT, the ViT) makes every prunable layer inside blocks.i a
member of step i, as the papers do for a decoder layer (inside a block, every layer reads the
block's inputs through the block's *unpruned* weights, as in their code); every other prunable
layer (an MLP's or CNN's layers, a head, a patch embedding) is a step of its own. Steps run in
the order the mask lists the layers (the modules' registration order, which is the forward order
for every model here). A step's inputs are captured by running the whole network on the
calibration examples up to the end of the step (a forward hook stops it there), so any topology
(residual connections, attention) is handled as its forward defines it, at the cost of re-running
the steps before (quadratic in the number of steps, small for these models).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from foundations.errors import UserError
from pruning.mask import Mask
from pruning.nm import check_divisible

DEFAULT_EXAMPLES = 128  # both papers: 128 calibration sequences


@dataclass(frozen=True)
class CalibrationData:
    """Calibration inputs (already drawn) and the batch size they are fed in."""

    inputs: torch.Tensor
    batch_size: int = 32


def calibration_examples(loader, count: int, seed: int) -> torch.Tensor:
    """`count` seeded training inputs (see the module docstring), on the loader's device."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"--calibration_examples={count!r} is invalid: give a whole number >= 1, such as 128")
    if hasattr(loader, "tokens") and hasattr(loader, "context"):  # a corpus: windows of the context length
        from datasets.text_loader import window_starts
        starts = window_starts(loader.tokens.numel(), loader.context, count, seed, "calibration")
        positions = starts.to(loader.tokens.device)[:, None] + torch.arange(loader.context, device=loader.tokens.device)
        return loader.tokens[positions].long()
    if hasattr(loader, "images") and hasattr(loader, "normalize"):  # in memory: a seeded subset, unaugmented
        order = torch.randperm(loader.num_examples, generator=torch.Generator().manual_seed(seed))[:count]
        return loader.normalize(loader.images.index_select(0, order.to(loader.images.device)))
    taken, seen = [], 0
    for x, _ in loader.batches(0, order_seed=seed):
        taken.append(x[:count - seen])
        seen += taken[-1].shape[0]
        if seen >= count:
            break
    return torch.cat(taken)


def pruning_steps(model: nn.Module, names: Iterable[str]) -> list[list[str]]:
    """The weight names grouped into steps, in order (see the module docstring)."""
    blocks = getattr(model, "blocks", None)
    block_of = {}
    if isinstance(blocks, nn.ModuleList):
        prefix = next(name for name, module in model.named_modules() if module is blocks)
        block_of = {f"{prefix}.{i}.": i for i in range(len(blocks))}
    steps: dict[object, list[str]] = {}
    for name in names:
        key = next((f"block {i}" for start, i in block_of.items() if name.startswith(start)), name)
        steps.setdefault(key, []).append(name)
    return list(steps.values())


def module_of(model: nn.Module, weight_name: str) -> nn.Module:
    return model.get_submodule(weight_name.rsplit(".", 1)[0])


def step_end(model: nn.Module, step: list[str]) -> nn.Module:
    """The module whose output ends a step: its block, or its one layer."""
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.ModuleList):
        prefix = next(name for name, module in model.named_modules() if module is blocks)
        for i, block in enumerate(blocks):
            if step[0].startswith(f"{prefix}.{i}."):
                return block
    return module_of(model, step[0])


def layer_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A layer's input as rows matching `weight.flatten(1)`'s columns: (tokens, inputs) for a
    Linear, unfolded patches (positions, in_channels x kh x kw) for a Conv2d."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or not isinstance(module.padding, tuple):
            raise UserError(f"post-training pruning reads a Conv2d's inputs as unfolded patches, which needs "
                            f"groups=1 and numeric padding: leave {type(module).__name__} layers out")
        patches = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                           stride=module.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    raise UserError(f"post-training pruning handles Linear and Conv2d layers, not {type(module).__name__}: "
                    f"leave it out with --prune_layers_to_ignore")


class _StepDone(Exception):
    """Raised by the hook at the end of a step: the rest of the forward is not needed."""


class InputStatistics:
    """Per layer, the sum over calibration rows of x_j^2 (`squares`, Wanda's ‖X_j‖²) and, when
    `gram`, of x xᵀ (SparseGPT's H up to a factor), with the number of rows."""

    def __init__(self, gram: bool, dtype: torch.dtype):
        self.gram, self.dtype = gram, dtype
        self.squares: dict[str, torch.Tensor] = {}
        self.grams: dict[str, torch.Tensor] = {}
        self.rows: dict[str, int] = {}

    def add(self, name: str, rows: torch.Tensor) -> None:
        rows = rows.detach().to(self.dtype)
        squares = rows.square().sum(0)
        self.squares[name] = self.squares[name] + squares if name in self.squares else squares
        if self.gram:
            gram = rows.T @ rows
            self.grams[name] = self.grams[name] + gram if name in self.grams else gram
        self.rows[name] = self.rows.get(name, 0) + rows.shape[0]


def capture(model: nn.Module, step: list[str], data: CalibrationData, *, gram: bool,
            dtype: Optional[torch.dtype] = None) -> InputStatistics:
    """The input statistics of every layer of `step`, from `model` as it is now (eval mode, no
    gradients), the forward stopped at the step's end."""
    reference = next(model.parameters())
    statistics = InputStatistics(gram, dtype or (torch.float64 if reference.device.type == "cpu" else torch.float32))
    handles = []
    for name in step:
        module = module_of(model, name)
        handles.append(module.register_forward_pre_hook(_recorder(statistics, name, module)))
    handles.append(step_end(model, step).register_forward_hook(_stop))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, data.inputs.shape[0], data.batch_size):
                x = data.inputs[start:start + data.batch_size].to(reference.device)
                if x.is_floating_point():
                    x = x.to(reference.dtype)
                try:
                    model(x)
                except _StepDone:
                    pass
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    missing = [name for name in step if name not in statistics.rows]
    if missing:
        raise UserError(f"the calibration forward never reached {', '.join(missing)}: post-training pruning "
                        f"needs every pruned layer to be used; leave it out with --prune_layers_to_ignore")
    return statistics


def masked_network(model: nn.Module, mask: Mask) -> nn.Module:
    """A copy of `model` with its pruned weights zeroed (the caller's model is not changed)."""
    net = copy.deepcopy(model)
    parameters = dict(net.named_parameters())
    with torch.no_grad():
        for name, alive in mask.items():
            parameters[name].mul_(alive.to(parameters[name].device, parameters[name].dtype))
    return net


# (name, weight, its step's input statistics, its alive entries) -> (new weight or None to keep it, new alive)
LayerPruner = Callable[[str, torch.Tensor, InputStatistics, torch.Tensor], tuple[Optional[torch.Tensor], torch.Tensor]]


def prune_step_by_step(model: nn.Module, mask: Mask, removals: Mapping[str, int], data: CalibrationData, *,
                       gram: bool, group_size: Optional[int], prune_layer: LayerPruner) -> tuple[Mask, nn.Module]:
    """(mask, pruned copy of `model`): the layers named in `removals`, step by step, each step's
    inputs captured through the steps before it as already pruned (and, where `prune_layer` gives
    new weights, reconstructed). `group_size` is M of an N:M pattern (its layers checked first)."""
    names = [name for name in mask.keys() if name in removals]
    if group_size is not None:
        check_divisible({name: mask[name].shape for name in names}, group_size)
    net = masked_network(model, mask)
    parameters = dict(net.named_parameters())
    result = dict(mask.items())
    for step in pruning_steps(net, names):
        statistics = capture(net, step, data, gram=gram)
        for name in step:
            weight = parameters[name]
            new_weight, alive = prune_layer(name, weight, statistics, result[name].to(weight.device))
            with torch.no_grad():
                kept = weight if new_weight is None else new_weight.to(weight.dtype)
                weight.copy_(kept * alive.to(weight.dtype))
            result[name] = alive
    return Mask(result), net


def _recorder(statistics: InputStatistics, name: str, module: nn.Module) -> Callable:
    def hook(_module, inputs):
        statistics.add(name, layer_rows(module, inputs[0]))
    return hook


def _stop(_module, _inputs, _output):
    raise _StepDone


def removals_per_row(total: int, rows: int, alive_per_row: torch.Tensor) -> torch.Tensor:
    """`total` removals spread over the rows as evenly as possible (the first total mod rows rows
    one more), none beyond what a row has alive; what a full row cannot take goes to the others."""
    alive_per_row = alive_per_row.cpu().long()
    if total > int(alive_per_row.sum()):
        raise ValueError(f"cannot remove {total} entries: only {int(alive_per_row.sum())} are alive")
    counts = torch.full((rows,), total // rows, dtype=torch.long)
    counts[:total % rows] += 1
    counts = torch.minimum(counts, alive_per_row)
    short = total - int(counts.sum())
    while short > 0:  # only after an earlier mask: give the remainder to rows with room, in order
        room = alive_per_row - counts
        extra = torch.minimum(room, torch.full_like(room, math.ceil(short / max(1, int((room > 0).sum())))))
        extra = torch.minimum(extra.cumsum(0), torch.tensor(short)).diff(prepend=torch.tensor([0]))
        counts += extra
        short = total - int(counts.sum())
    return counts
