"""Pruning: which weights are alive (Mask), keeping them that way in training (MaskedTraining),
ranking weights (scores), choosing what to remove (prune, prune_in_rounds), whole-unit pruning
(prune_units), and mask shuffles (Mask.shuffled)."""

from pruning.mask import Mask
from pruning.masked import MaskedTraining
from pruning.rounds import prune_in_rounds
from pruning.scores import ScoringData
from pruning.select import prune
from pruning.structured import prune_units

__all__ = ["Mask", "MaskedTraining", "ScoringData", "prune", "prune_in_rounds", "prune_units"]
