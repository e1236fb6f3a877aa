"""checkpoint.pt (everything needed to resume exactly) and the saved model files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from foundations import paths
from foundations.errors import UserError
from foundations.step import Step
from platforms.storage import load_torch, save_torch
from training.hooks import Hook


def model_filename(step: Step) -> str:
    return paths.model_file(step.ep, step.it)


def save_model(model: torch.nn.Module, out_dir: Path, step: Step) -> Path:
    """The model's plain state_dict: loadable with weights_only=True and no open_prune code."""
    path = Path(out_dir) / model_filename(step)
    save_torch({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return path


class DamagedFile(UserError):
    """A saved file exists but cannot be read (truncated, foreign, garbled)."""


def load_model_state(path: Path) -> dict:
    """A saved state_dict; DamagedFile when it is missing or unreadable (callers that can
    recompute it do so)."""
    try:
        state = load_torch(path)
    except FileNotFoundError:
        raise DamagedFile(f"{path} is missing; rerun the same command to recompute it") from None
    except Exception as error:  # a truncated or foreign file: say which and what to do
        raise DamagedFile(f"cannot read {path} ({type(error).__name__}); rerun the same command to recompute it") \
            from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DamagedFile(f"{path} does not hold a state_dict; rerun the same command to recompute it")
    return state


def _rng_state() -> dict:
    """Every global RNG, as tensors and plain tuples (so weights_only loading accepts it)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(out_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    iteration: int, loss_sum: torch.Tensor, loss_count: int,
                    hooks: Sequence[Hook] = ()) -> None:
    """Everything needed to continue bitwise: weights, optimizer, the running train loss, every
    RNG, the position (the iteration; data order is a function of it) and the hooks' state."""
    hook_states = {hook.checkpoint_key: hook.state_dict() for hook in hooks}
    save_torch({
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "loss_sum": loss_sum.detach().cpu(),
        "loss_count": loss_count,
        "rng": _rng_state(),
        "hooks": {key: state for key, state in hook_states.items() if state is not None},
    }, Path(out_dir) / paths.CHECKPOINT)


def load_checkpoint(out_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, hooks: Sequence[Hook] = ()) -> Optional[tuple[int, torch.Tensor, int]]:
    """Restore model, optimizer, RNG and hook states from checkpoint.pt; return (iteration,
    loss_sum, loss_count), or None when there is no checkpoint."""
    path = Path(out_dir) / paths.CHECKPOINT
    if not path.exists():
        return None
    try:
        state = load_torch(path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        saved_hooks = state.get("hooks", {})
        for hook in hooks:
            if hook.checkpoint_key in saved_hooks:
                hook.load_state_dict(saved_hooks[hook.checkpoint_key])
    except Exception as error:
        raise UserError(f"{path} is corrupt or incompatible ({type(error).__name__}: {str(error)[:80]}); "
                        f"delete it to restart this run from its beginning")
    return state["iteration"], state["loss_sum"].to(device), state["loss_count"]
