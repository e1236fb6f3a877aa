"""When and at what learning rate a pruned network of the sweep is fine-tuned.

The authors' code (train_cfg_structured_sp3.py, train_cfg_tune.py) does this by default:
  unstructured and N:M   no fine-tuning (their post-hoc script hard-codes it off)
  neurons / filters      always fine-tuned, 10 epochs (ResNets: 5), at a constant learning rate
                         of the training optimizer: OPD and post_only at lr x 1e-3 (ResNets
                         lr x 1e-2), every other criterion at lr x 1e-4 (ResNets lr x 1e-3)
where lr is the recipe's learning rate. --finetune_steps sets the length for any structure
(0ep: none), --finetune_lr one rate for every criterion; unstructured fine-tuning asked for
without a rate runs at 0.1 x lr (the rate of the authors' unused unstructured tuning path).
Ours always fine-tunes under the mask; the authors' code re-applies it for OPD only.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from foundations.step import Step
from pruning.structured import STRUCTURES as UNIT_STRUCTURES

POSTERIOR_CRITERIA = ("opd", "post_only")
UNSTRUCTURED_LR_FACTOR = 0.1


class Plan(NamedTuple):
    steps: str
    lr: float


def is_resnet(model_name: str) -> bool:
    """The authors' ResNet branch (5 epochs, larger rates); wide ResNets took the default branch."""
    return "resnet" in model_name and "wide" not in model_name


def structured_lr_factor(criterion: str, model_name: str) -> float:
    """The authors' fine-tuning rate of a structured cell, as a multiple of the recipe's lr."""
    factor = 1e-3 if criterion in POSTERIOR_CRITERIA else 1e-4
    return factor * 10 if is_resnet(model_name) else factor


def finetune_plan(structure: str, criterion: str, model_name: str, lr: float, steps: Optional[str],
                  given_lr: Optional[float], iterations_per_epoch: int) -> Optional[Plan]:
    """How long and at what rate this cell is fine-tuned, or None for not at all."""
    structured = structure in UNIT_STRUCTURES
    if steps is None:
        if not structured:
            return None
        steps = "5ep" if is_resnet(model_name) else "10ep"
    if Step.parse(steps, iterations_per_epoch, "finetune_steps").iteration == 0:
        return None
    if given_lr is not None:
        return Plan(steps, given_lr)
    factor = structured_lr_factor(criterion, model_name) if structured else UNSTRUCTURED_LR_FACTOR
    return Plan(steps, factor * lr)
