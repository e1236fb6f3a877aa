"""The oneshot branch's hyperparameters and what they refuse before anything runs: the strategy's
canonical spelling, its default scope (layerwise for the post-training strategies, the papers'),
the N:M structure against the fraction, settings read only by another method, and --start_step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.step import check_step_syntax, written_parts
from pruning import scores
from pruning.nm import parse_pattern
from pruning.post_training import calibration, owl, sparsegpt, wanda
from pruning.post_training import prune as post_training
from pruning.post_training.prune import STRATEGIES as POST_TRAINING
from pruning.validate import SCOPES, check_iterations, check_prune_fraction
from runs import parent_run

PER_LAYER_SCOPES = post_training.SCOPES  # what the post-training strategies take


@dataclass
class OneshotHparams(Hparams):
    _name = "Oneshot Pruning Hyperparameters"
    _description = "What is scored, how much is removed, and what is trained."

    strategy: str = hparam(help="random | magnitude | snipN | graspN | graspabsN | synflow | opd "
                                "(N: examples per class) | wanda | sparsegpt (post-training, from calibration data)")
    prune_fraction: Optional[float] = hparam(
        None, "fraction of the prunable weights removed, in [0, 1) (with --structure=N:M: 1 - N/M or left out)")
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
    prune_scope: str = hparam(
        "global", "global | layerwise | erk (per layer at Erdős–Rényi-Kernel densities) | lamp | owl (outlier-"
                  "weighted layerwise, from calibration data); wanda and sparsegpt take any but global (give "
                  "layerwise for the papers' uniform sparsity)", choices=SCOPES)
    prune_layers_to_ignore: Optional[str] = hparam(
        None, "comma-separated weights never pruned (default: none: every conv and linear weight is ranked, "
              "the output layer's too, as in the Missing-the-Mark fork; for wanda and sparsegpt the output layer, "
              "as their papers)", is_list=True)
    score_in_one_batch: bool = hparam(
        False, "score snipN/graspN examples as one batch (Synaptic-Flow) instead of in batches of --batch_size "
               "(the fork: BatchNorm statistics per batch)")
    structure: Optional[str] = hparam(None, "N:M: every row keeps N of every M consecutive inputs (e.g. 2:4), "
                                            "removing 1 - N/M of every considered layer")
    calibration_examples: Optional[int] = hparam(
        None, "wanda, sparsegpt, owl: seeded training inputs (windows of the context length for a corpus) read "
              f"step by step (default {calibration.DEFAULT_EXAMPLES}, the papers')")
    wanda_group: str = hparam("row", "wanda: weights compete within their output row (the paper's) or the whole layer",
                              choices=wanda.GROUPS)
    sparsegpt_damp: float = hparam(sparsegpt.DEFAULT_DAMP, "sparsegpt: dampening added to the Hessian's diagonal, "
                                                           "as a fraction of its mean (the paper's percdamp)")
    sparsegpt_blocksize: int = hparam(sparsegpt.DEFAULT_BLOCKSIZE, "sparsegpt: columns per lazy batch update "
                                                                   "(exact for any size; the mask is chosen per block)")
    owl_threshold: float = hparam(owl.DEFAULT_THRESHOLD, "owl: M, an outlier's Wanda metric exceeds M times its "
                                                         "step's mean (the OWL code's Hyper_m)")
    owl_lambda: float = hparam(owl.DEFAULT_LAMBDA, "owl: λ, the steps' densities range over ±λ around the target "
                                                   "(the OWL code's Lamda)")
    parent_run: Optional[str] = hparam(
        None, "prune a branch's run further (runs/parent_run.py): its weights at --prune_step and --state_step, "
              "--prune_fraction of what its mask.pt keeps, e.g. branch_iterative_<hash>/level_2 (default: the trunk)")
    finetune_steps: Optional[str] = hparam(
        None, "training after pruning, from --start_step: a length such as 200it or 1ep, 0 for none (the pruned "
              "network is only evaluated); default: to the end of the trunk's training_steps")

    def validate(self) -> None:
        if self.strategy is not None:  # canonical before hashing: SNIP10 and snip10 are one run
            stripped = self.strategy.strip().lower()
            self.strategy = stripped if stripped in POST_TRAINING else scores.canonical(self.strategy)
        if self.structure is not None:
            self.structure = "%d:%d" % parse_pattern(self.structure)
            n, m = parse_pattern(self.structure)
            if self.prune_fraction is not None and abs(self.prune_fraction - (1 - n / m)) > 1e-9:
                raise UserError(f"--prune_fraction={self.prune_fraction} contradicts --structure={self.structure}, "
                                f"which removes {1 - n / m:g} of every layer: leave --prune_fraction out")
        elif self.prune_fraction is None and self.strategy is not None:
            raise UserError("give --prune_fraction (the fraction of the weights to remove) or an N:M --structure")
        if self.prune_fraction is not None:
            check_prune_fraction(self.prune_fraction)
        check_iterations(self.prune_iterations)
        if self.calibration_examples is not None and self.calibration_examples < 1:
            raise UserError(f"--calibration_examples={self.calibration_examples} must be at least 1, such as 128")
        if self.sparsegpt_damp < 0 or self.sparsegpt_blocksize < 1 or self.owl_threshold <= 0 or self.owl_lambda < 0:
            raise UserError("--sparsegpt_damp and --owl_lambda must be >= 0, --sparsegpt_blocksize >= 1 and "
                            "--owl_threshold > 0")
        if self.finetune_steps is not None:
            self.finetune_steps = self.finetune_steps.strip()
            if self.finetune_steps != "0":
                check_step_syntax(self.finetune_steps, "finetune_steps")
        if self.strategy in POST_TRAINING:
            check_post_training(self)
        check_settings_used(self)
        self.start_step = canonical_start(self.start_step, self.state_step)
        self.parent_run = self.parent_run and parent_run.normalized_address(self.parent_run, "parent_run")


def check_settings_used(h: OneshotHparams) -> None:
    """A method's setting given for a run that does not use that method is refused (it would be
    hashed, and so make another run of the same experiment)."""
    unused = []
    if h.calibration_examples is not None and h.strategy not in POST_TRAINING:
        unused.append(("--calibration_examples", "wanda and sparsegpt"))
    if h.wanda_group != "row" and h.strategy != "wanda":
        unused.append(("--wanda_group", "--strategy=wanda"))
    if (h.sparsegpt_damp != sparsegpt.DEFAULT_DAMP or h.sparsegpt_blocksize != sparsegpt.DEFAULT_BLOCKSIZE) \
            and h.strategy != "sparsegpt":
        unused.append(("--sparsegpt_damp/--sparsegpt_blocksize", "--strategy=sparsegpt"))
    if (h.owl_threshold != owl.DEFAULT_THRESHOLD or h.owl_lambda != owl.DEFAULT_LAMBDA) and h.prune_scope != "owl":
        unused.append(("--owl_threshold/--owl_lambda", "--prune_scope=owl"))
    if unused and h.strategy is not None:
        flag, reader = unused[0]
        raise UserError(f"{flag} is read only by {reader}: leave it out")


def check_post_training(h: OneshotHparams) -> None:
    """What wanda and sparsegpt refuse: rounds, the highest scores, a global ranking, and (for
    sparsegpt, whose weights are its own) anything that changes the weights or the mask after."""
    if h.prune_iterations != 1:
        raise UserError(f"--strategy={h.strategy} prunes in one pass: leave --prune_iterations out")
    if h.prune_highest:
        raise UserError(f"--strategy={h.strategy} removes the lowest scores: leave --prune_highest out")
    if h.structure is None and h.prune_scope not in PER_LAYER_SCOPES:
        others = ", ".join(scope for scope in PER_LAYER_SCOPES if scope != "layerwise")
        raise UserError(f"--strategy={h.strategy} allots sparsity per layer: give --prune_scope=layerwise (uniform, "
                        f"the papers') or one of {others}")
    if h.structure is not None and h.prune_scope not in ("global", "layerwise"):
        raise UserError(f"--structure={h.structure} gives every layer {h.structure}: leave --prune_scope out")
    if h.strategy == "sparsegpt" and (h.randomize_layerwise or h.reinitialize):
        raise UserError("--strategy=sparsegpt reconstructs the weights it keeps for its mask: --randomize_layerwise "
                        "and --reinitialize would discard them; use wanda or magnitude for those controls")


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
