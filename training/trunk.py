"""The trunk: a dense training run, and what branches take from it."""

from __future__ import annotations

import functools
import shutil
import sys
from typing import Optional, Sequence

import torch

import datasets.registry as datasets_registry
import models.registry as models_registry
from foundations.desc import TrainDesc, write_hparams
from foundations.errors import UserError
from foundations.step import Step
from platforms.lock import run_lock
from platforms.platform import Platform
from platforms.storage import read_json
from training import checkpoint
from training.hooks import Hook
from training.loop import train


class Trunk:
    """One replicate of a dense training run: its directory, data, and weights at any step."""

    def __init__(self, desc: TrainDesc, replicate: int, platform: Platform):
        self.desc = desc
        self.replicate = replicate
        self.platform = platform
        self.dir = desc.run_path(platform.root, replicate)
        self.seeds = desc.seeds(replicate)
        self.info = datasets_registry.info(desc.dataset.dataset_name)
        self._loaders: dict[bool, object] = {}
        if desc.training.precision == "bf16" and platform.device.type != "cuda":
            raise UserError("--precision=bf16 is bf16 autocast on CUDA: use it with a CUDA --device, or drop it")
        if not models_registry.exists(desc.model.model_name):
            raise UserError(f"unknown model {desc.model.model_name!r}; valid names look like: "
                            f"{', '.join(models_registry.name_patterns())}")

    # ---- data --------------------------------------------------------------------------------
    @property
    def dataset_hparams(self):
        return self.desc.dataset.replace(transformation_seed=self.seeds["transformation"])

    def loader(self, train: bool):
        if train not in self._loaders:
            self._loaders[train] = datasets_registry.get(
                self.dataset_hparams, train, root=self.platform.dataset_root, device=self.platform.device,
                download=self.platform.download, num_workers=self.platform.num_workers)
        return self._loaders[train]

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

    # ---- models ------------------------------------------------------------------------------
    def fresh_model(self, seed: Optional[int] = None) -> torch.nn.Module:
        """The initial network (the trunk's init, or another init with `seed`)."""
        model = models_registry.get(self.desc.model, self.info.input_shape, self.info.num_classes,
                                    seed=self.seeds["init"] if seed is None else seed)
        return model.to(self.platform.device)

    @functools.cached_property
    def prunable_layer_names(self) -> list[str]:
        return list(self.fresh_model().prunable_layer_names)

    @property
    def is_done(self) -> bool:
        return (self.dir / "done.json").exists()

    def run(self, wait_for_lock: bool = False, hooks: Sequence[Hook] = ()) -> dict:
        """Train the trunk unless it is done; returns its done.json."""
        write_hparams(self.dir, self.desc.bundles(), kind="train", replicate=self.replicate,
                      seeds=self.seeds, run_hash=self.desc.hash)  # or check the stored ones
        if not self.is_done:
            with run_lock(self.dir, wait=wait_for_lock):
                if not self.is_done:  # another process may have finished it while we waited
                    train(self.fresh_model(), self.desc.training, self.loader(True), self.loader(False),
                          self.dir, platform=self.platform, data_order_seed=self.seeds["data_order"],
                          hooks=hooks)
        return read_json(self.dir / "done.json")

    def model_at(self, step: Step) -> torch.nn.Module:
        """The trunk's weights at `step`: from its saved file, or, when that step was not saved,
        reproduced deterministically by retraining from init to `step` (and saved for next time)."""
        path = self.dir / checkpoint.model_filename(step)
        model = self.fresh_model()
        if not path.exists():
            self.run(wait_for_lock=True)
            if not path.exists():
                self._reproduce(step)
        model.load_state_dict(checkpoint.load_model_state(path))
        return model

    def _reproduce(self, step: Step) -> None:
        print(f"reproducing the trunk's weights at {step} (not saved during training) ...", file=sys.stderr)
        scratch = self.dir / f"reproduce_{step.ep}ep{step.it}it"
        quick = self.desc.training.replace(eval_every=str(step))  # the same steps, evaluated only at the ends
        with run_lock(self.dir, wait=True):
            model = self.fresh_model()
            train(model, quick, self.loader(True), self.loader(False), scratch, platform=self.platform,
                  data_order_seed=self.seeds["data_order"], end=step)
            checkpoint.save_model(model, self.dir, step)
        shutil.rmtree(scratch)
