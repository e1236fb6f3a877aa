"""checkpoint.pt (everything needed to resume exactly) and the saved model files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from foundations.errors import UserError
from foundations.step import Step
from platforms.storage import load_torch, save_torch

CHECKPOINT = "checkpoint.pt"


def model_filename(step: Step) -> str:
    return f"model_ep{step.ep}_it{step.it}.pt"


def save_model(model: torch.nn.Module, out_dir: Path, step: Step) -> Path:
    """The model's plain state_dict: loadable with weights_only=True and no open_prune code."""
    path = Path(out_dir) / model_filename(step)
    save_torch({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return path


def load_model_state(path: Path) -> dict:
    try:
        return load_torch(path)
    except Exception as error:  # a truncated or foreign file: say which and what to do
        raise UserError(f"cannot read {path} ({type(error).__name__}); delete it so that it is recomputed")


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
                    iteration: int, loss_sum: torch.Tensor, loss_count: int) -> None:
    save_torch({
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "loss_sum": loss_sum.detach().cpu(),
        "loss_count": loss_count,
        "rng": _rng_state(),
    }, Path(out_dir) / CHECKPOINT)


def load_checkpoint(out_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> Optional[tuple[int, torch.Tensor, int]]:
    """Restore model, optimizer and RNG from checkpoint.pt; return (iteration, loss_sum, loss_count),
    or None when there is no checkpoint."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = load_torch(path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
    except Exception as error:
        raise UserError(f"{path} is corrupt or incompatible ({type(error).__name__}: {str(error)[:80]}); "
                        f"delete it to restart this run from its beginning")
    return state["iteration"], state["loss_sum"].to(device), state["loss_count"]
