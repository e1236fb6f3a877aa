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

from typing import Optional

import torch

from branches.oneshot.before_training import (
    add_pruned_metrics,
    evaluates_before_training,
    finish_untrained,
    metric_row,
    pruned_metrics,
)
from branches.oneshot.hparams import START_AT_STATE, OneshotHparams
from foundations import paths
from foundations.errors import UserError
from foundations.seeds import derive_seed
from foundations.step import Step
from foundations.tables import format_metric
from platforms.storage import load_torch, read_json, save_torch
from pruning import ScoringData, prune_in_rounds
from pruning.mask import Mask
from pruning.post_training import calibration
from pruning.post_training.prune import STRATEGIES as POST_TRAINING
from pruning.post_training.prune import PostTrainingSettings, prune_post_training
from pruning.validate import considered_layers
from runs import parent_run, run_files
from runs.branch import Branch, load_mask, row, train_masked

NAME = "oneshot"
SUMMARY = ("prune once with random, magnitude, snipN, graspN, graspabsN, synflow, opd, wanda or sparsegpt at any "
           "step, then train (or only evaluate)")
SPARSEGPT_WEIGHTS = "sparsegpt_weights.pth"  # the reconstructed weights the branch evaluates and trains

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
    settings = PostTrainingSettings(h.strategy, h.prune_fraction, h.prune_scope, h.structure, h.wanda_group,
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
                               scope=h.prune_scope, highest=h.prune_highest, layers_to_ignore=ignore,
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
