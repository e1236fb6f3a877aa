"""IMP with rewinding to a step of training, learning-rate rewinding, or fine-tuning.

Each level prunes like the iterative branch, then retrains:
  --rewind=weights   from the trunk's weights at --rewind_step, replaying the schedule from there;
  --rewind=lr        from the previous level's final weights, replaying the schedule from --rewind_step;
  --rewind=finetune  from the previous level's final weights, at the final learning rate, for as
                     many steps as the replay would take.
"""

from __future__ import annotations

from dataclasses import dataclass

from branches.lottery.imp import ImpHparams, run_levels
from branches.lottery.imp import cells as cells  # what a finished marker covers (runs/branch.py)
from branches.lottery.imp import check as check_imp
from branches.lottery.imp import merge_options as merge_options
from foundations.hparams import Hparams, hparam
from training.optimizers import LRSchedule

NAME = "rewinding"
SUMMARY = "IMP that rewinds to a training step (weights), replays the schedule (lr), or fine-tunes"
REWINDS = ("weights", "lr", "finetune")


@dataclass
class RewindHparams(Hparams):
    _name = "Rewinding Hyperparameters"
    _description = "Where each level restarts."

    rewind_step: str = hparam(help="the step rewound to, e.g. 500it or 2ep")
    rewind: str = hparam("weights", "weights | lr | finetune", choices=REWINDS)


BUNDLES = {"imp": ImpHparams, "rewind": RewindHparams}


def run(branch):
    trunk = branch.trunk
    h = branch.bundles["rewind"]
    rewind_step = trunk.step(h.rewind_step, "rewind_step")
    training = trunk.desc.training
    if h.rewind == "finetune":
        final_lr = LRSchedule(training, trunk.iterations_per_epoch)(max(trunk.end_step.iteration - 1, 0))
        training = training.replace(lr=final_lr, milestone_steps=None, gamma=None, warmup_steps=None,
                                    lr_schedule="milestones", final_lr=None)

    def start_of_level(level, mask, trained):
        if h.rewind == "weights":
            return trunk.model_at(rewind_step), rewind_step, None
        return trained, rewind_step, training

    return run_levels(branch, branch.bundles["imp"], start_of_level)


def check(branch):
    branch.trunk.step(branch.bundles["rewind"].rewind_step, "rewind_step")
    check_imp(branch)
