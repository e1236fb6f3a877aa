"""Iterative magnitude pruning with rewinding to initialization: the lottery-ticket procedure.

At each level, prune 20% (--pruning_fraction) of the surviving weights with the smallest
magnitude after training, reset the survivors to their values at initialization, and train again.
"""

from branches.lottery.imp import ImpHparams, run_levels
from branches.lottery.imp import cells as cells  # what a finished marker covers (runs/branch.py)
from branches.lottery.imp import check as check  # refuses bad layers before training (runs/branch.py)
from branches.lottery.imp import merge_options as merge_options

NAME = "iterative"
SUMMARY = "lottery-ticket IMP: prune the smallest trained weights, rewind to init, retrain, repeat"
BUNDLES = {"imp": ImpHparams}


def run(branch):
    trunk = branch.trunk
    return run_levels(branch, branch.bundles["imp"], lambda level, mask, trained: (trunk.initial_model(), None, None))
