"""Prune once (in one or more rounds) with any score, at any step, then train.

Scores the trunk's weights at --prune_step with --strategy, removes --prune_fraction of the
prunable weights (over --prune_iterations rounds, rescoring each round), optionally shuffles the
mask within layers or reinitializes the weights, and trains the trunk's weights at --state_step
under the mask from --start_step to the end of training. --start_step defaults to 0ep0it, as in the
"Missing the Mark" fork of OpenLTH (training/branch/oneshot_experiments.py: the schedule and the data
order restart, so weights rewound to step k still get the whole schedule); --start_step=state starts
where the state's weights were (the schedule and data order continue from --state_step).

Post-training strategies (pruning/post_training/): `wanda` and `sparsegpt` prune the trunk's
*trained* weights by default (--prune_step defaults to the end of training for them, --state_step
to the prune step) from --calibration_examples seeded training inputs, per layer (uniform, the
papers', with --prune_scope=layerwise; erk or owl allocate). SparseGPT changes the weights it
keeps: the reconstructed weights are saved (sparsegpt_weights.pth) and are what is evaluated and
trained. --structure=N:M keeps N of every M consecutive inputs of every row, for every strategy.
--finetune_steps sets the training after pruning (0: none, the pruned network is only evaluated);
for the post-training strategies, or whenever --finetune_steps is given, the pruned network is
also evaluated before any training (row "pruned, before fine-tune"; done.json metrics `pruned_*`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from foundations import paths
from foundations.errors import UserError
from foundations.hparams import Hparams, hparam
from foundations.seeds import derive_seed
from foundations.step import Step, check_step_syntax, written_parts
from foundations.tables import format_metric
from platforms.storage import load_torch, read_json, save_torch, write_json
from pruning import ScoringData, prune_in_rounds, scores
from pruning.mask import Mask
from pruning.nm import parse_pattern
from pruning.post_training import calibration, owl, sparsegpt, wanda
from pruning.post_training import prune as post_training
from pruning.post_training.prune import STRATEGIES as POST_TRAINING
from pruning.post_training.prune import PostTrainingSettings, prune_post_training
from pruning.validate import SCOPES, check_iterations, check_prune_fraction, considered_layers
from runs import parent_run, run_files
from runs.branch import Branch, load_mask, row, train_masked
from training import checkpoint
from training.losses import Loss, evaluate

NAME = "oneshot"
SUMMARY = ("prune once with random, magnitude, snipN, graspN, graspabsN, synflow, opd, wanda or sparsegpt at any "
           "step, then train (or only evaluate)")
PER_LAYER_SCOPES = post_training.SCOPES  # what the post-training strategies take
SPARSEGPT_WEIGHTS = "sparsegpt_weights.pth"  # the reconstructed weights the branch evaluates and trains
PRUNED_METRICS = "pruned_metrics.json"  # the pruned network's test metrics before any training


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
    prune_scope: Optional[str] = hparam(
        None, "global | layerwise | erk (per layer at Erdős–Rényi-Kernel densities) | lamp | owl (outlier-weighted "
              "layerwise, from calibration data) (default: global; for wanda and sparsegpt, which take any but "
              "global, layerwise: the papers')", choices=SCOPES)
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

    def scope(self) -> str:
        """--prune_scope, or the strategy's default."""
        return self.prune_scope or default_scope(self.strategy)

    def validate(self) -> None:
        if self.strategy is not None:  # canonical before hashing: SNIP10 and snip10 are one run
            stripped = self.strategy.strip().lower()
            self.strategy = stripped if stripped in POST_TRAINING else scores.canonical(self.strategy)
            if self.prune_scope == default_scope(self.strategy):
                self.prune_scope = None  # the strategy's default scope is never hashed: one run, written either way
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


def default_scope(strategy: Optional[str]) -> str:
    """layerwise for wanda and sparsegpt (the papers' uniform sparsity per layer), global otherwise."""
    return "layerwise" if strategy in POST_TRAINING else "global"


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
    if (h.owl_threshold != owl.DEFAULT_THRESHOLD or h.owl_lambda != owl.DEFAULT_LAMBDA) and h.scope() != "owl":
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
    if h.structure is None and h.scope() not in PER_LAYER_SCOPES:
        others = ", ".join(scope for scope in PER_LAYER_SCOPES if scope != "layerwise")
        raise UserError(f"--strategy={h.strategy} allots sparsity per layer: give --prune_scope=layerwise (uniform, "
                        f"the papers') or one of {others}")
    if h.structure is not None and h.scope() not in ("global", "layerwise"):
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


BUNDLES = {"oneshot": OneshotHparams}
SEED_DEFAULT = "replicate"  # an unset --seed is the replicate itself


def steps(branch: Branch):
    """(prune, state, start) steps. For wanda and sparsegpt the prune step defaults to the end of
    training (the papers prune the trained network) and the state step to the prune step."""
    h, trunk = branch.bundles["oneshot"], branch.trunk
    post_training = h.strategy in POST_TRAINING
    prune = trunk.step(h.prune_step, "prune_step") if h.prune_step else (trunk.end_step if post_training
                                                                        else trunk.step("0ep", "prune_step"))
    state = trunk.step(h.state_step, "state_step") if h.state_step else (prune if post_training
                                                                        else trunk.step("0ep", "state_step"))
    if h.strategy == "sparsegpt" and state != prune:
        raise UserError(f"--strategy=sparsegpt trains the weights it reconstructed at --prune_step ({prune}): "
                        f"leave --state_step out")
    start = state if h.start_step == START_AT_STATE else trunk.step(h.start_step or "0ep0it", "start_step")
    return prune, state, start


def finetune_end(branch: Branch, start) -> Optional[str]:
    """training_steps of the fine-tune: start + --finetune_steps (None: the trunk's own)."""
    h, trunk = branch.bundles["oneshot"], branch.trunk
    if h.finetune_steps is None:
        return None
    length = 0 if h.finetune_steps == "0" else Step.parse(h.finetune_steps, trunk.iterations_per_epoch,
                                                          "finetune_steps").iteration
    return f"{start.iteration + length}it"


def layers_to_ignore(branch: Branch) -> list[str]:
    """--prune_layers_to_ignore; unset, none (the fork's), or for wanda and sparsegpt the output
    layer (the papers prune the blocks' layers and keep the head)."""
    h = branch.bundles["oneshot"]
    if h.prune_layers_to_ignore is None and h.strategy in POST_TRAINING:
        prunable = set(branch.trunk.prunable_layer_names)
        return [name for name in branch.trunk.fresh_model().output_layer_names if name in prunable]
    return branch.layers_to_ignore(h.prune_layers_to_ignore, model_default=False)


# Scores with no meaning on token ids (their own files refuse too, later, from inside scoring).
UNDEFINED_FOR_LANGUAGE_MODELS = {"synflow": "feeds an all-ones input, undefined for token ids",
                                 "opd": "fits a Laplace on (batch, classes) outputs"}


def check(branch: Branch) -> None:
    strategy = branch.bundles["oneshot"].strategy
    if branch.trunk.info.task == "language_modeling" and strategy in UNDEFINED_FOR_LANGUAGE_MODELS:
        raise UserError(f"--strategy={strategy} {UNDEFINED_FOR_LANGUAGE_MODELS[strategy]}, so it is not defined for "
                        "a language model: use magnitude, random, snipN, graspN, wanda or sparsegpt")
    _, _, start = steps(branch)
    layers_to_ignore(branch)
    finetune_end(branch, start)


def calibration_data(branch: Branch) -> calibration.CalibrationData:
    h, trunk = branch.bundles["oneshot"], branch.trunk
    count = h.calibration_examples or calibration.DEFAULT_EXAMPLES
    inputs = calibration.calibration_examples(trunk.loader(True), count, branch.seed())
    return calibration.CalibrationData(inputs, trunk.desc.dataset.batch_size)


def starting_mask(branch: Branch, model: torch.nn.Module) -> Mask:
    """What pruning starts from: --parent_run's mask, or every weight."""
    h = branch.bundles["oneshot"]
    return parent_run.load_mask(branch.trunk, h.parent_run, "parent_run") if h.parent_run else Mask.ones_like(model)


def post_training_prune(branch: Branch, model) -> tuple[Mask, Optional[dict]]:
    """(mask, SparseGPT's reconstructed state_dict or None) of wanda or sparsegpt on `model`."""
    h = branch.bundles["oneshot"]
    mask = starting_mask(branch, model)
    names = considered_layers(mask.keys(), layers_to_ignore(branch))
    settings = PostTrainingSettings(h.strategy, h.prune_fraction, h.scope(), h.structure, h.wanda_group,
                                    h.sparsegpt_damp, h.sparsegpt_blocksize, h.owl_threshold, h.owl_lambda)
    mask, net = prune_post_training(model, mask, names, settings, calibration_data(branch))
    return mask, None if net is None else {key: value.detach().cpu() for key, value in net.state_dict().items()}


def make_mask(branch: Branch) -> Mask:
    """Score the trunk's weights at the prune step and prune (under torchrun: on rank 0 only,
    every rank gets its mask)."""
    h, trunk = branch.bundles["oneshot"], branch.trunk
    prune_step, _, _ = steps(branch)
    ignore = layers_to_ignore(branch)
    scored = (parent_run.load_weights(trunk, h.parent_run, prune_step, "prune_step") if h.parent_run
              else trunk.model_at(prune_step))

    def score_and_prune() -> Mask:
        if h.strategy in POST_TRAINING:
            mask, state = post_training_prune(branch, scored)
            if state is not None:
                run_files.open_run_dir(branch.dir)
                save_torch(state, branch.dir / SPARSEGPT_WEIGHTS)
            if h.randomize_layerwise:
                mask = mask.shuffled("layerwise", branch.seed(), layers_to_ignore=ignore)
            return mask.to("cpu")
        data = ScoringData(examples=trunk.loader(True), seed=branch.seed(), input_shape=trunk.info.input_shape,
                           batch_size=None if h.score_in_one_batch else trunk.desc.dataset.batch_size,
                           weight_decay=trunk.desc.training.weight_decay)
        mask = prune_in_rounds(scored, h.strategy, h.prune_fraction, h.prune_iterations, data=data,
                               mask=starting_mask(branch, scored),
                               scope=h.scope(), highest=h.prune_highest, layers_to_ignore=ignore,
                               structure=h.structure)
        if h.randomize_layerwise:
            mask = mask.shuffled("layerwise", branch.seed(), layers_to_ignore=ignore)
        return mask.to("cpu")

    return trunk.platform.on_primary(score_and_prune)


def sparsegpt_weights(branch: Branch) -> Optional[dict]:
    """The saved reconstructed weights, or None when missing or unreadable (then recomputed)."""
    try:
        state = load_torch(branch.dir / SPARSEGPT_WEIGHTS)
    except Exception:
        return None
    return state if isinstance(state, dict) else None


def pruned_network(branch: Branch, state_step) -> tuple[Mask, torch.nn.Module]:
    """(mask, the weights trained under it): the saved mask or a new one; the state step's weights,
    a fresh draw (--reinitialize), or SparseGPT's reconstruction."""
    h, trunk = branch.bundles["oneshot"], branch.trunk
    mask = load_mask(branch.dir)
    if h.strategy == "sparsegpt":
        state = trunk.platform.on_primary(sparsegpt_weights, branch)
        if mask is None or state is None:
            mask = make_mask(branch)
            state = trunk.platform.on_primary(sparsegpt_weights, branch)
        model = trunk.fresh_model()
        model.load_state_dict(state)
        return mask, model
    mask = mask or make_mask(branch)
    model = (trunk.fresh_model(seed=derive_seed(branch.seed(), "mask")) if h.reinitialize
             else parent_run.load_weights(trunk, h.parent_run, state_step, "state_step") if h.parent_run
             else trunk.model_at(state_step))
    return mask, model


def pruned_metrics(branch: Branch, model: torch.nn.Module, mask: Mask) -> dict:
    """The test metrics of `model` under `mask` before any training (saved in pruned_metrics.json)."""
    trunk = branch.trunk
    path = branch.dir / PRUNED_METRICS

    def measure() -> dict:
        try:
            stored = read_json(path)
            if isinstance(stored, dict) and stored:
                return stored
        except (OSError, ValueError):
            pass
        net = wanda.masked_network(model, mask.to(next(model.parameters()).device))
        training = trunk.desc.training
        loss = Loss(training.loss, trunk.info.task, trunk.info.num_classes, getattr(training, "label_smoothing", 0.0))
        metrics = evaluate(net, trunk.loader(False), loss)
        run_files.open_run_dir(branch.dir)
        write_json(metrics, path)
        return metrics

    return trunk.platform.on_primary(measure)


def add_pruned_metrics(branch: Branch, before: dict) -> dict:
    """done.json with the before-training metrics added as `pruned_<name>` (rank 0 writes)."""
    def merge() -> dict:
        done = read_json(branch.dir / paths.DONE)
        extra = {f"pruned_{key}": value for key, value in before.items()}
        if any(done["metrics"].get(key) != value for key, value in extra.items()):
            done["metrics"] = {**done["metrics"], **extra}
            write_json(done, branch.dir / paths.DONE)
        return done
    return branch.trunk.platform.on_primary(merge)


def evaluates_before_training(branch: Branch) -> bool:
    h = branch.bundles["oneshot"]
    return h.strategy in POST_TRAINING or h.finetune_steps is not None


def metric_row(label: str, mask: Mask, metrics: dict, run_dir, task: str) -> list[str]:
    """A table row; for a language model the label carries the perplexity (the column is next-token accuracy)."""
    if task == "language_modeling" and metrics.get("test_perplexity") is not None:
        label = f"{label} (perplexity {metrics['test_perplexity']:.3f})"
    return row(label, mask, {"metrics": metrics}, run_dir)


def run(branch: Branch) -> list[list[str]]:
    trunk = branch.trunk
    _, state_step, start_step = steps(branch)
    mask, model = pruned_network(branch, state_step)
    dense = trunk.done()["metrics"]  # the reference the pruned network is measured against
    if not evaluates_before_training(branch):
        done = train_masked(trunk, branch.dir, model, mask, start=start_step)
        return [["dense (trunk)", "1.0000", format_metric(dense.get("test_accuracy")), str(trunk.dir)],
                row("pruned", mask, done, branch.dir)]
    task = trunk.info.task
    rows = [metric_row("dense (trunk)", Mask.ones_like(model), dense, trunk.dir, task)]
    before = pruned_metrics(branch, model, mask)
    rows.append(metric_row("pruned, before fine-tune", mask, before, branch.dir, task))
    end = finetune_end(branch, start_step)
    if end is not None and int(end[:-2]) == start_step.iteration:  # --finetune_steps=0: evaluated, not trained
        trunk.platform.on_primary(finish_untrained, branch, model, mask, start_step, before)
        return rows
    training = trunk.desc.training if end is None else trunk.desc.training.replace(training_steps=end)
    train_masked(trunk, branch.dir, model, mask, start=start_step, training=training)
    done = add_pruned_metrics(branch, before)
    rows.append(metric_row("after fine-tune", mask, done["metrics"], branch.dir, task))
    return rows


def finish_untrained(branch: Branch, model: torch.nn.Module, mask: Mask, start, before: dict) -> None:
    """The run of --finetune_steps=0: mask.pt, the pruned weights at the start step and a done.json
    whose metrics are the pruned network's (test_* and pruned_test_* alike), as a run that trained
    for zero steps would have."""
    if run_files.finished(branch.dir, start) is not None:
        return
    run_files.open_run_dir(branch.dir)
    mask.save_if_changed(branch.dir)
    checkpoint.save_model(wanda.masked_network(model, mask.to(next(model.parameters()).device)), branch.dir, start)
    metrics = {**before, **{f"pruned_{key}": value for key, value in before.items()}}
    write_json({"final_step": str(start), "final_iteration": start.iteration, "metrics": metrics,
                "seconds_this_session": 0.0}, branch.dir / paths.DONE)


def summary(branch: Branch) -> dict:
    """branch_done.json's `results` (what `report` tabulates): the pruned network before training
    and, when it was fine-tuned, after (metric names as done.json's)."""
    try:
        done = read_json(branch.dir / paths.DONE)
    except (OSError, ValueError):
        return {}
    metrics = done.get("metrics", {}) if isinstance(done, dict) else {}
    before = {key[len("pruned_"):]: value for key, value in metrics.items() if key.startswith("pruned_")}
    if not before:
        return {}
    results = [["pruned, before fine-tune", before]]
    if done.get("final_iteration", 0) > steps(branch)[2].iteration:
        results.append(["after fine-tune", {key: metrics[key] for key in before if key in metrics}])
    return {"results": results}
