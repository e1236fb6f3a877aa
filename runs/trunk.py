"""The trunk: a dense training run, and what branches take from it.

Under torchrun every rank runs the same calls: training is collective, and each write, repair
or decision about files is made by rank 0 (`platform.on_primary`), whose answer (or refusal)
every rank gets.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shutil
from typing import Optional, Sequence

import torch

import datasets.registry as datasets_registry
import models.registry as models_registry
from foundations import paths
from foundations.desc import TrainDesc
from foundations.errors import UserError
from foundations.step import Step, written_parts
from foundations.tables import format_metric, print_table
from platforms.environment import describe
from platforms.lock import run_lock
from platforms.platform import Platform
from platforms.storage import read_json, write_text
from runs import run_files
from runs.hparams_file import check_stored_hparams, write_hparams
from training import checkpoint
from training.hooks import Hook
from training.loop import Boundaries, check_world, train
from training.losses import Loss
from training.metrics import read_records


class Trunk:
    """One replicate of a dense training run: its directory, data, and weights at any step."""

    def __init__(self, desc: TrainDesc, replicate: int, platform: Platform):
        self.desc = desc
        self.replicate = replicate
        self.platform = platform
        self.dir = desc.run_path(platform.root, replicate)
        self.seeds = desc.seeds(replicate)
        self.info = datasets_registry.info_of(desc.dataset)
        self._loaders: dict[str, object] = {}
        self._done: Optional[dict] = None  # done.json once run() has seen the trunk finished
        if desc.training.precision == "bf16" and platform.device.type != "cuda":
            raise UserError("--precision=bf16 is bf16 autocast on CUDA: use it with a CUDA --device, or drop it")
        if not models_registry.exists(desc.model.model_name):
            raise UserError(f"unknown model {desc.model.model_name!r}; valid names look like: "
                            f"{', '.join(models_registry.name_patterns())}")

    # ---- data --------------------------------------------------------------------------------
    @property
    def dataset_hparams(self):
        return self.desc.dataset.replace(transformation_seed=self.seeds["transformation"])

    def loader(self, split: bool | str):
        """The training (True / "train"), validation ("val") or test (False / "test") split."""
        key = {True: "train", False: "test"}.get(split, split)
        if key not in self._loaders:
            self._loaders[key] = datasets_registry.get(
                self.dataset_hparams, key, root=self.platform.dataset_root, device=self.platform.device,
                download=self.platform.download, num_workers=self.platform.num_workers)
        return self._loaders[key]

    @property
    def iterations_per_epoch(self) -> int:
        """Training steps per epoch: the (possibly subsampled) training set over the batch size."""
        return len(self.loader(True))

    def step(self, text: str, flag: str) -> Step:
        """Parse a step string for this trunk, refusing steps beyond the end of training."""
        step = Step.parse(text, self.iterations_per_epoch, flag)
        if step > self.end_step:
            raise UserError(f"--{flag}={text} is beyond the end of training ({self.desc.training.training_steps})")
        return step

    @property
    def end_step(self) -> Step:
        return Step.parse(self.desc.training.training_steps, self.iterations_per_epoch, "training_steps")

    def check(self) -> None:
        """Everything that can be refused before a file is written: the data is there (both
        splits load), every step flag lies within training, the batch splits over torchrun's
        processes, and the root can be written."""
        check_world(self.loader(True), self.platform.world)
        self.loader(False)
        self.desc.training.check_steps(self.iterations_per_epoch)
        Loss(self.desc.training.loss, self.info.task, self.info.num_classes,  # a loss that fits the task
             getattr(self.desc.training, "label_smoothing", 0.0))
        if self.pretrained is not None:
            self.pretrained.check()
            _fitted(self.fresh_model(), self.pretrained.fresh_model().state_dict(),
                    self.pretrained.desc.dataset.dataset_name)
        self.platform.prepare_root()

    # ---- models ------------------------------------------------------------------------------
    def fresh_model(self, seed: Optional[int] = None) -> torch.nn.Module:
        """A newly drawn network: the trunk's initialization, or another one with `seed`."""
        if seed is not None and self.desc.model.pretrained is not None:
            raise UserError(f"this trunk starts from the checkpoint {self.desc.model.pretrained}, so a network drawn "
                            "from another seed would be that checkpoint again, not a reinitialization: leave out "
                            "the reinit control (--reinitialize, --control=reinit, --controls=reinit) here")
        model = models_registry.get(self.desc.model, self.info.input_shape, self.info.num_classes,
                                    seed=self.seeds["init"] if seed is None else seed)
        return model.to(self.platform.device)

    @functools.cached_property
    def pretrained(self) -> Optional["Trunk"]:
        """The pretraining run (--pretrain_* flags) this trunk starts from, or None: itself a trunk,
        the one `train` makes with the pretraining dataset and recipe, so it is found and reused."""
        training = self.desc.training.pretraining()
        if training is None:
            return None
        dataset = self.desc.dataset.replace(
            dataset_name=self.desc.training.pretrain_dataset_name or self.desc.dataset.dataset_name,
            batch_size=self.desc.training.pretrain_batch_size or self.desc.dataset.batch_size,
            subsample_fraction=None, random_labels_fraction=None, validation_fraction=None)
        return Trunk(TrainDesc(dataset, self.desc.model, training), self.replicate, self.platform)

    def starting_model(self) -> torch.nn.Module:
        """What training starts from: a fresh draw, or the pretraining run's final weights (trained
        first if needed). A pretraining dataset with another number of classes leaves the output
        layer at this trunk's own initialization (OpenLTH's rule); any other tensor must fit."""
        model = self.fresh_model()
        if self.pretrained is None:
            return model
        source = self.pretrained
        done = source.run(wait_for_lock=True)
        final = run_files.final_step_of(done, source.iterations_per_epoch)
        state = checkpoint.load_model_state(source.dir / checkpoint.model_filename(final))
        model.load_state_dict(_fitted(model, state, source.desc.dataset.dataset_name))
        return model

    def initial_model(self) -> torch.nn.Module:
        """The trunk's weights at initialization, as saved in its run dir (so a branch rewinds to
        exactly what the trunk trained from)."""
        return self.model_at(Step.zero(self.iterations_per_epoch))

    @functools.cached_property
    def prunable_layer_names(self) -> list[str]:
        return list(self.fresh_model().prunable_layer_names)

    @property
    def is_done(self) -> bool:
        """Whether the trunk has a readable done.json (reads only: safe while it trains)."""
        try:
            return isinstance(read_json(self.dir / paths.DONE), dict)
        except (OSError, ValueError):
            return False

    def done(self) -> Optional[dict]:
        """done.json of the finished trunk (repaired if damaged, by rank 0), or None."""
        return self.platform.on_primary(run_files.finished, self.dir, self.end_step)

    def _open(self) -> Optional[dict]:
        run_files.open_run_dir(self.dir)
        write_hparams(self.dir, self.desc.bundles(), kind="train", replicate=self.replicate,
                      environment=lambda: describe(self.platform.device, self.platform.world),
                      seeds=self.seeds, run_hash=self.desc.hash)  # or check the stored ones
        return run_files.finished(self.dir, self.end_step)

    def _finished_as_recorded(self) -> Optional[dict]:
        """done.json of a trunk whose own files say it finished: readable done.json and final
        weights, stored hparams equal to the command's (a UserError otherwise). Reads no data, so
        rerunning a finished command costs little more than importing torch; anything unreadable
        or missing (hparams.log) gives None and the slow path checks and repairs."""
        run_files.open_run_dir(self.dir)  # leftover temporaries of a killed writer go
        if not (self.dir / paths.HPARAMS_LOG).exists():
            return None
        try:
            done = read_json(self.dir / paths.DONE)
            epochs, iterations = written_parts(done["final_step"])
            checkpoint.load_model_state(self.dir / paths.model_file(epochs, iterations))
            stored = read_json(self.dir / paths.HPARAMS)["hparams"]
        except (OSError, ValueError, KeyError, TypeError, UserError):
            return None
        if not isinstance(done.get("metrics"), dict) or not isinstance(stored, dict):
            return None
        check_stored_hparams(self.dir / paths.HPARAMS, self.desc.bundles(), stored)
        return done

    def run(self, wait_for_lock: bool = False, hooks: Sequence[Hook] = ()) -> dict:
        """Train the trunk unless it is done; returns its done.json. Once seen finished, later
        calls (every `model_at`) return it without checking the files again."""
        if self._done is not None:
            return self._done
        done = self.platform.on_primary(self._finished_as_recorded)
        if done is None:
            self.check()
            done = self.platform.on_primary(self._open)
        if done is None:
            with run_lock(self.dir, wait=wait_for_lock):
                done = self.done()  # another process may have finished it while we waited
                if done is None:
                    train(self.starting_model(), self.desc.training, self.loader(True), self.loader(False),
                          self.dir, platform=self.platform, data_order_seed=self.seeds["data_order"],
                          hooks=hooks)
                    done = self.done()
        self._done = done
        self._observe(done)
        return done

    def _observe(self, done: dict) -> None:
        """What the command asks a finished trunk to show beyond what it logged: weights at
        --weight_save_steps and evaluations every --eval_every. Both are observation only (not
        hashed: asking for them later finds the same trunk and keeps every branch of it); what is
        missing comes from one deterministic replay of the trunk's training, never a new trunk."""
        h = self.desc.training
        if h.weight_save_steps is None and h.eval_every is None:
            return
        ipe = self.iterations_per_epoch
        final = run_files.final_step_of(done, ipe)
        saves = [s for s in Step.parse_list(h.weight_save_steps, ipe, "weight_save_steps")
                 if s <= final and not (self.dir / checkpoint.model_filename(s)).exists()]
        logged = {r["iteration"] for r in read_records(self.dir / paths.METRICS) if r["name"] == "test_loss"}
        bounds = Boundaries(h, ipe, 0, final.iteration, None)
        evaluations = [i for i in range(final.iteration + 1) if bounds.evaluates(i) and i not in logged]
        if saves or evaluations:
            self._replay(saves, evaluations)

    def _replay(self, saves: list[Step], evaluations: list[int]) -> None:
        """Train again from the trunk's initialization to the last step asked for, in a scratch
        directory, with these saves and evaluations; move the weights into the trunk and merge the
        test metrics into its metrics.jsonl (training is deterministic: they are what a run that
        had asked for them from the start holds)."""
        ipe, primary = self.iterations_per_epoch, self.platform.is_primary
        last = max([s.iteration for s in saves] + evaluations)
        if primary:
            run_files.say(f"replaying the trunk to {Step(last, ipe)} for {len(saves)} save(s) and "
                          f"{len(evaluations)} evaluation(s) it did not make ...")
        scratch = self.dir / f"replay_to_{last}it"
        eval_every = self.desc.training.eval_every if evaluations else (str(Step(last, ipe)) if last else None)
        quick = self.desc.training.replace(weight_save_steps=",".join(map(str, saves)) or None, eval_every=eval_every)
        with run_lock(self.dir, wait=True):
            if last:
                train(self.starting_model(), quick, self.loader(True), self.loader(False), scratch,
                      platform=dataclasses.replace(self.platform, log_to=()),  # a scratch run: logged nowhere
                      data_order_seed=self.seeds["data_order"], end=Step(last, ipe))
            if primary:
                for step in saves:
                    if step.iteration:
                        (scratch / checkpoint.model_filename(step)).replace(self.dir / checkpoint.model_filename(step))
                    else:
                        checkpoint.save_model(self.starting_model(), self.dir, step)
                wanted = set(evaluations)
                added = [r for r in read_records(scratch / paths.METRICS)
                         if r["iteration"] in wanted and r["name"].startswith("test_")]
                merged = sorted([*read_records(self.dir / paths.METRICS), *added], key=lambda r: r["iteration"])
                write_text("".join(json.dumps(record) + "\n" for record in merged), self.dir / paths.METRICS)
                shutil.rmtree(scratch, ignore_errors=True)
        self.platform.barrier()  # the files are on disk for every rank

    def model_at(self, step: Step) -> torch.nn.Module:
        """The trunk's weights at `step`: from its saved file, or, when that step was not saved
        (or its file is damaged), reproduced by the deterministic replay of its training from init to
        `step` (and saved for next time)."""
        path = self.dir / checkpoint.model_filename(step)
        self.run(wait_for_lock=True)
        model = self.fresh_model()
        if not self.platform.on_primary(_readable_or_set_aside, path):
            self._replay([step], [])
        model.load_state_dict(checkpoint.load_model_state(path))
        return model


def _fitted(model: torch.nn.Module, state: dict, dataset_name: str) -> dict:
    """`state` for `model`: the output layer keeps the model's own tensors where the pretrained ones
    have another shape (other classes); any other misfit is one UserError."""
    own = model.state_dict()
    outputs = set(getattr(model, "output_layer_names", []))
    fitted = {name: own[name] if name in outputs and name in state and state[name].shape != own[name].shape
              else state.get(name) for name in own}
    wrong = [name for name, tensor in fitted.items() if tensor is None or tensor.shape != own[name].shape]
    if wrong:
        raise UserError(f"--pretrain_dataset_name={dataset_name} gives {', '.join(wrong[:3])} another shape than "
                        f"the main dataset does (inputs of another size?): pretrain on data of the same input shape")
    return {name: tensor.to(own[name].device) for name, tensor in fitted.items()}


def _readable_or_set_aside(path) -> bool:
    """Whether saved weights can be loaded; an unreadable file is moved aside to be recomputed."""
    try:
        checkpoint.load_model_state(path)
        return True
    except checkpoint.DamagedFile:
        if path.exists():
            run_files.say(f"{path} is unreadable; recomputing it")
            run_files.set_aside(path)
        return False


def run_trunk(trunk: Trunk, args: argparse.Namespace) -> int:
    """`open_prune.py train`: train the trunk unless it is done, and print its final results."""
    if args.display_output_location:
        print(trunk.dir)
        return 0
    was_done = trunk.is_done
    done = trunk.run(wait_for_lock=args.wait_for_lock)
    metrics = done["metrics"]
    print_table(["run", "step", "test accuracy", "test loss"],
                [[str(trunk.dir), done["final_step"], format_metric(metrics.get("test_accuracy")),
                  format_metric(metrics.get("test_loss"))]])
    if was_done:
        print("(already finished: nothing was retrained)")
    return 0
