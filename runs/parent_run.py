"""A branch's parent run other than its trunk: another branch's run dir (a level of an iterative
branch, oneshot's network, a transfer, ...), whose mask and whose weights at a step the branch
takes. The science-of-pruning tree (init -> train -> prune -> reinit -> train -> prune ...) is built
from such edges.

A parent is addressed by a path written one way only, so that it hashes one way:
    branch_iterative_<hash>/level_3                          in the branch's own replicate directory
    train_<hash>/replicate_2/branch_iterative_<hash>/level_3  anywhere under the root (another trunk,
                                                              another replicate, another dataset)
Every directory on that path is named by its run's hash, so the address is the parent's hash: a
branch that keeps the address in a hashed flag has its parent's hash in its own (and another
parent is another directory). Nothing here trains: a parent must be finished (its mask.pt, its
saved weights) before a child reads it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Optional

import torch

from foundations import paths
from foundations.desc import TrainDesc
from foundations.errors import UserError
from foundations.step import Step
from platforms.storage import read_json
from pruning.mask import Mask
from runs import run_files
from runs.trunk import Trunk
from training import checkpoint

END = "end"  # a parent's step: the final step its done.json records


def normalized_address(text: str, flag: str) -> str:
    """A parent's address written one way (no './', no trailing '/'); refused when absolute,
    empty or climbing out with '..'."""
    path = PurePosixPath(text.strip())
    if path.is_absolute() or str(path) in ("", ".") or ".." in path.parts:
        raise UserError(f"--{flag}={text} must be a run dir relative to the trunk's replicate directory, e.g. "
                        f"branch_iterative_<hash>/level_3, or to the root, e.g. train_<hash>/replicate_1/"
                        f"branch_iterative_<hash>/level_3 (`open_prune.py runs` lists them)")
    return str(path)


def parent_dir(trunk: Trunk, address: str) -> Path:
    """Where an address points: under the root when it starts with a train_<hash> directory,
    else in the trunk's replicate directory."""
    first = PurePosixPath(address).parts[0]
    return (trunk.platform.root if paths.TRAIN_DIR.match(first) else trunk.dir.parent) / address


def replicate_of(trunk: Trunk, address: str) -> int:
    """The replicate the parent belongs to (an address under the root names it)."""
    for part in PurePosixPath(address).parts:
        match = paths.REPLICATE_DIR.match(part)
        if match:
            return int(match[1])
    return trunk.replicate


def load_mask(trunk: Trunk, address: str, flag: str) -> Mask:
    """The parent's mask.pt (on the CPU), refused with one line unless it is a mask of the trunk's
    model: the same prunable layers, each of the same shape."""
    directory = parent_dir(trunk, address)
    if not Mask.exists(directory):
        raise UserError(f"--{flag}={address}: {directory} holds no mask.pt; give a pruned run dir relative to "
                        f"{trunk.dir.parent} (or to the root), e.g. branch_iterative_<hash>/level_1 "
                        f"(`open_prune.py runs` lists them)")
    try:
        mask = Mask.load(directory)
    except Exception:
        raise UserError(f"--{flag}={address}: {directory / paths.MASK} is unreadable; rerun the command that made "
                        f"it, which recomputes it") from None
    check_fits(trunk, mask.items(), address, flag, "mask")
    return mask


def check_fits(trunk: Trunk, named: object, address: str, flag: str, what: str,
               only: Optional[set[str]] = None) -> None:
    """Refuse tensors (name, tensor) that are not the trunk model's: unknown names or other shapes."""
    shapes = {name: tuple(tensor.shape) for name, tensor in trunk.fresh_model().state_dict().items()}
    allowed = set(trunk.prunable_layer_names) if what == "mask" else set(shapes)
    items = list(named)
    foreign = [f"{name} {tuple(tensor.shape)}" for name, tensor in items
               if (only is None or name in only) and (name not in allowed or tuple(tensor.shape) != shapes[name])]
    if foreign or not items:
        raise UserError(f"--{flag}={address} holds a {what} of another model ({', '.join(foreign) or 'no layers'} "
                        f"do not fit {trunk.desc.model.model_name} on {trunk.desc.dataset.dataset_name}): give a "
                        f"run of a model of the same shapes")


def parent_trunk(trunk: Trunk, address: str) -> Trunk:
    """The trunk the parent grew from (its nearest hparams.json's dataset, model and training), for
    its steps per epoch; the trunk itself for an address in its replicate directory."""
    if not paths.TRAIN_DIR.match(PurePosixPath(address).parts[0]):
        return trunk
    directory = parent_dir(trunk, address)
    for folder in (directory, *directory.parents):
        if (folder / paths.HPARAMS).is_file():
            stored = read_json(folder / paths.HPARAMS)["hparams"]
            return Trunk(TrainDesc.from_dict(stored), replicate_of(trunk, address), trunk.platform)
        if folder == trunk.platform.root:
            break
    raise UserError(f"{address} is not inside a run of {trunk.platform.root}: no hparams.json on its path; give a "
                    f"run dir that `open_prune.py runs` lists")


def parent_step(trunk: Trunk, address: str, text: str, flag: str) -> Step:
    """A step of the parent's training: `end` (its done.json's final step) or a step string in the
    parent's own epochs (its dataset's steps per epoch)."""
    owner = parent_trunk(trunk, address)
    directory = parent_dir(trunk, address)
    if text == END:
        done = trunk.platform.on_primary(run_files.read_done, directory, owner.end_step)
        if not done:
            raise UserError(f"--{flag}={END}: {directory} has not finished training (no done.json); run it first")
        return run_files.final_step_of(done, owner.iterations_per_epoch)
    return Step.parse(text, owner.iterations_per_epoch, flag)


def load_weights(trunk: Trunk, address: str, step: Step, flag: str, reinit_outputs: bool = False) -> torch.nn.Module:
    """A model of the trunk's with the parent's weights saved at `step`. With `reinit_outputs`, the
    output layer keeps the trunk's own initialization when the parent's has another shape (a ticket
    from a dataset with other classes); every other tensor must fit."""
    directory = parent_dir(trunk, address)
    path = directory / checkpoint.model_filename(step)
    if not path.is_file():
        saved = sorted(p.name for p in directory.glob("model_ep*_it*.pt"))
        raise UserError(f"--{flag}={step}: {directory} saved no weights at that step; it has "
                        f"{', '.join(saved) or 'none'} (give one of those, or end)")
    state = checkpoint.load_model_state(path)
    model = trunk.fresh_model()
    own = model.state_dict()
    if reinit_outputs:
        outputs = set(getattr(model, "output_layer_names", []))
        state = {name: (own[name] if name in outputs and tuple(tensor.shape) != tuple(own[name].shape) else tensor)
                 for name, tensor in state.items()}
    check_fits(trunk, state.items(), address, flag, "state")
    missing = sorted(set(own) - set(state))
    if missing:
        raise UserError(f"--{flag}: {path} lacks {', '.join(missing[:3])}: it holds another model's weights")
    model.load_state_dict({name: tensor.to(own[name].device) for name, tensor in state.items()})
    return model
