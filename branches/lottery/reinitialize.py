"""Controls for the lottery ticket: for each level of an iterative branch with the same flags,
train a network that keeps something of the ticket and destroys the rest.

  --control=reinit             the ticket's mask, freshly initialized weights
  --control=shuffle_layerwise  the ticket's weights at init, its mask shuffled within each layer
  --control=shuffle_global     the same, shuffled across all pruned layers
  --control=sign               the ticket's mask, each weight at init replaced by its sign times
                               the standard deviation of its layer's initial weights

With an N:M --structure both shuffles move the kept weights only within each group of M
consecutive inputs, so the control is N:M like its ticket (a shuffle across groups would test
another sparsity pattern, not the places of the ticket's weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional

import torch

from branches.lottery import iterative
from branches.lottery.imp import cells as cells  # what a finished marker covers (runs/branch.py)
from branches.lottery.imp import check as check_imp
from branches.lottery.imp import merge_options as merge_options
from branches.lottery.imp import write_level_zero
from foundations import paths
from foundations.hparams import Hparams, hparam
from foundations.seeds import derive_seed
from platforms.lock import run_lock
from pruning.mask import Mask
from pruning.nm import parse_pattern
from pruning.validate import considered_layers
from runs.branch import Branch, load_mask, row, train_masked
from training.loop import train_together

NAME = "reinitialize"
SUMMARY = "controls for each IMP level: reinit, shuffled masks (layerwise/global), or signed constants"
CONTROLS = ("reinit", "shuffle_layerwise", "shuffle_global", "sign")


@dataclass
class ControlHparams(Hparams):
    _name = "Control Hyperparameters"
    _description = "What the control keeps of each ticket."

    control: str = hparam(help="reinit | shuffle_layerwise | shuffle_global | sign", choices=CONTROLS)
    seed: Optional[int] = hparam(None, "seed of the new init or shuffle (default: derived from the replicate)")


BUNDLES = {"imp": iterative.ImpHparams, "control": ControlHparams}
ROW_HEADER = ["level", "density", "test accuracy", "ticket accuracy", "run"]  # the control beside its ticket


def signed_constant(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every prunable weight by sign(w) * std(layer's initial weights)."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name in model.prunable_layer_names:
            weight = parameters[name]
            weight.copy_(weight.sign() * weight.std())
    return model


def control_model(branch: Branch, level: int) -> torch.nn.Module:
    """The weights a control level starts from."""
    control = branch.bundles["control"].control
    trunk = branch.trunk
    if control == "reinit":
        return trunk.fresh_model(seed=derive_seed(branch.seed() + level, "init"))
    if control == "sign":
        return signed_constant(trunk.initial_model())
    return trunk.initial_model()


def control_mask(branch: Branch, level: int, ticket: Mask) -> Mask:
    """The mask a control level trains under: the ticket's, or the ticket's shuffled."""
    control = branch.bundles["control"].control
    if not control.startswith("shuffle"):
        return ticket
    scope = "layerwise" if control == "shuffle_layerwise" else "global"
    structure = branch.bundles["imp"].structure
    ignore = branch.layers_to_ignore(branch.bundles["imp"].prune_layers_to_ignore)
    if structure is not None:
        return shuffled_in_groups(ticket, parse_pattern(structure)[1], branch.seed() + level, ignore)
    return ticket.shuffled(scope, branch.seed() + level, layers_to_ignore=ignore)


def shuffled_in_groups(mask: Mask, m: int, seed: int, layers_to_ignore: list[str]) -> Mask:
    """`mask` with each group of m consecutive inputs of every row of the considered layers
    permuted at random (drawn on the CPU from `seed`), so every group keeps its count."""
    generator = torch.Generator().manual_seed(seed)
    result = dict(mask.items())
    for name in considered_layers(mask.keys(), layers_to_ignore):
        groups = mask[name].cpu().reshape(-1, m)
        order = torch.rand(groups.shape, generator=generator).argsort(dim=1)
        result[name] = groups.gather(1, order).reshape(mask[name].shape).to(mask[name].device)
    return Mask(result)


def run(branch: Branch) -> list[list[str]]:
    """Each level's control, with the ticket it controls for beside it."""
    tickets = Branch(iterative.NAME, branch.trunk, {"imp": branch.bundles["imp"]}, iterative)
    tickets.prepare()
    with run_lock(tickets.dir, wait=True):
        ticket_rows = iterative.run(tickets)
    done = write_level_zero(branch, paths.level_dir(branch.dir, 0))
    rows = [row(0, Mask.load(paths.level_dir(branch.dir, 0)), done, branch.trunk.dir)]
    levels = range(1, branch.bundles["imp"].levels + 1)
    masks = {level: load_mask(paths.level_dir(branch.dir, level))
             or control_mask(branch, level, Mask.load(paths.level_dir(tickets.dir, level))) for level in levels}
    # The levels' controls depend only on the tickets, all made above: under --stack they train as one stack.
    dones = train_together([partial(_train_level, branch, level, masks[level]) for level in levels])
    rows += [row(level, masks[level], done, paths.level_dir(branch.dir, level)) for level, done in zip(levels, dones)]
    return [[*control[:3], ticket[2], control[3]] for control, ticket in zip(rows, ticket_rows)]


def _train_level(branch: Branch, level: int, mask: Mask) -> dict:
    return train_masked(branch.trunk, paths.level_dir(branch.dir, level), control_model(branch, level), mask)


def check(branch: Branch) -> None:
    check_imp(branch)
