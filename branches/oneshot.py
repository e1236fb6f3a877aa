"""Prune once (in one or more rounds) with any score, at any step, then train.

Scores the trunk's weights at --prune_step with --strategy, removes --prune_fraction of the
prunable weights (over --prune_iterations rounds, rescoring each round), optionally shuffles the
mask within layers or reinitializes the weights, and trains the trunk's weights at --state_step
under the mask from --start_step to the end of training. --start_step defaults to 0ep0it, as in the
"Missing the Mark" fork of OpenLTH (training/branch/oneshot_experiments.py: the schedule and the data
order restart, so weights rewound to step k still get the whole schedule); --start_step=state starts
where the state's weights were (the schedule and data order continue from --state_step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.seeds import derive_seed
from foundations.step import check_step_syntax, written_parts
from foundations.tables import format_metric
from pruning import ScoringData, prune_in_rounds, scores
from pruning.mask import Mask
from pruning.validate import SCOPES, check_iterations, check_prune_fraction
from runs.branch import Branch, load_mask, row, train_masked

NAME = "oneshot"
SUMMARY = "prune once with random, magnitude, snipN, graspN, graspabsN, synflow or opd at any step, then train"


@dataclass
class OneshotHparams(Hparams):
    _name = "Oneshot Pruning Hyperparameters"
    _description = "What is scored, how much is removed, and what is trained."

    strategy: str = hparam(help="random | magnitude | snipN | graspN | graspabsN | synflow | opd "
                                "(N: examples per class)")
    prune_fraction: float = hparam(help="fraction of the prunable weights removed, in [0, 1)")
    prune_iterations: int = hparam(1, "rounds; each removes 1-(1-p)^(1/n) of the remaining weights and rescores")
    prune_highest: bool = hparam(False, "remove the highest-scoring weights instead of the lowest")
    prune_step: Optional[str] = hparam(None, "the trunk's weights at this step are scored (default: 0ep, the init)")
    state_step: Optional[str] = hparam(None, "the trunk's weights at this step are trained (default: 0ep)")
    start_step: Optional[str] = hparam(
        None, "where the schedule and data order start: a step, or 'state' for --state_step (default: 0ep0it, "
              "the Missing-the-Mark fork's: the whole schedule, whatever the state step)")
    randomize_layerwise: bool = hparam(False, "shuffle the mask within each layer (keeps per-layer counts)")
    reinitialize: bool = hparam(False, "train freshly initialized weights under the mask")
    seed: Optional[int] = hparam(None, "seed for random scores, examples, shuffles, reinit (default: the replicate)")
    prune_scope: str = hparam("global", "global | layerwise | erk (per layer at Erdős–Rényi-Kernel densities)",
                              choices=SCOPES)
    prune_layers_to_ignore: Optional[str] = hparam(
        None, "comma-separated weights never pruned (default: none: every conv and linear weight is ranked, "
              "the output layer's too, as in the Missing-the-Mark fork)", is_list=True)
    score_in_one_batch: bool = hparam(
        False, "score snipN/graspN examples as one batch (Synaptic-Flow) instead of in batches of --batch_size "
               "(the fork: BatchNorm statistics per batch)")

    def validate(self) -> None:
        if self.strategy is not None:  # canonical before hashing: SNIP10 and snip10 are one run
            self.strategy = scores.canonical(self.strategy)
        if self.prune_fraction is not None:
            check_prune_fraction(self.prune_fraction)
        check_iterations(self.prune_iterations)
        self.start_step = canonical_start(self.start_step, self.state_step)


START_AT_STATE = "state"  # --start_step=state: where the state's weights were


def canonical_start(start: Optional[str], state: Optional[str]) -> Optional[str]:
    """--start_step as it is stored and hashed: unset when it starts at 0 and so does the state
    (the run at initialization keeps its hash), '0ep0it' when it starts at 0 after a later state
    step (so those runs, whose unset --start_step once meant the state step, change hash rather
    than meaning), 'state' as given, any other step as written."""
    if state is not None:
        check_step_syntax(state, "state_step")
    state_is_zero = state is None or written_parts(state) == (0, 0)
    if start is not None:
        start = start.strip()
        if start.lower() == START_AT_STATE:
            return None if state_is_zero else START_AT_STATE
        try:
            check_step_syntax(start, "start_step")
        except UserError:
            raise UserError(f"--start_step={start!r} is neither a step nor 'state': write it as '0ep0it', "
                            f"'500it' or '2ep10it', or 'state' to start where --state_step's weights were") from None
        if written_parts(start) != (0, 0):
            return start
    return None if state_is_zero else "0ep0it"


BUNDLES = {"oneshot": OneshotHparams}
SEED_DEFAULT = "replicate"  # an unset --seed is the replicate itself


def steps(branch: Branch):
    h, trunk = branch.bundles["oneshot"], branch.trunk
    prune = trunk.step(h.prune_step or "0ep", "prune_step")
    state = trunk.step(h.state_step or "0ep", "state_step")
    start = state if h.start_step == START_AT_STATE else trunk.step(h.start_step or "0ep0it", "start_step")
    return prune, state, start


def layers_to_ignore(branch: Branch) -> list[str]:
    return branch.layers_to_ignore(branch.bundles["oneshot"].prune_layers_to_ignore, model_default=False)


def check(branch: Branch) -> None:
    steps(branch)
    layers_to_ignore(branch)


def make_mask(branch: Branch) -> Mask:
    """Score the trunk's weights at the prune step and prune (under torchrun: on rank 0 only,
    every rank gets its mask)."""
    h, trunk = branch.bundles["oneshot"], branch.trunk
    prune_step, _, _ = steps(branch)
    ignore = layers_to_ignore(branch)
    scored = trunk.model_at(prune_step)

    def score_and_prune() -> Mask:
        data = ScoringData(examples=trunk.loader(True), seed=branch.seed(), input_shape=trunk.info.input_shape,
                           batch_size=None if h.score_in_one_batch else trunk.desc.dataset.batch_size,
                           weight_decay=trunk.desc.training.weight_decay)
        mask = prune_in_rounds(scored, h.strategy, h.prune_fraction, h.prune_iterations, data=data,
                               scope=h.prune_scope, highest=h.prune_highest, layers_to_ignore=ignore)
        if h.randomize_layerwise:
            mask = mask.shuffled("layerwise", branch.seed(), layers_to_ignore=ignore)
        return mask.to("cpu")

    return trunk.platform.on_primary(score_and_prune)


def run(branch: Branch) -> list[list[str]]:
    h, trunk = branch.bundles["oneshot"], branch.trunk
    _, state_step, start_step = steps(branch)
    mask = load_mask(branch.dir) or make_mask(branch)
    model = (trunk.fresh_model(seed=derive_seed(branch.seed(), "mask")) if h.reinitialize
             else trunk.model_at(state_step))
    done = train_masked(trunk, branch.dir, model, mask, start=start_step)
    dense = trunk.done()["metrics"].get("test_accuracy")  # the reference the pruned network is measured against
    return [["dense (trunk)", "1.0000", format_metric(dense), str(trunk.dir)], row("pruned", mask, done, branch.dir)]
