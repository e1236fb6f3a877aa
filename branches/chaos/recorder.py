"""Record the trajectory of some weights during training, a window at a time, keeping only what the
chaos-causality analysis needs: one Lyapunov exponent per weight and window, and the risk.

Snapshot t (t = 0, 1, ...) is the analysed weights after optimizer step t + 1 (``record="weights"``)
or the change that step made to them (``record="updates"``), in float64. Window i covers snapshots
[S i, S i + W) (S = ``window_stride(W, overlap)``); only whole windows count. When window i closes
(after step S i + W) the hook takes the largest Lyapunov exponent of every analysed weight over
the window (``lyapunov.largest_lyapunov`` with the given options) and the misclassification risk
1 - accuracy of the weights at that step on the risk split (by the `correct` rule: the branch's
--accuracy), and logs ``risk`` and ``static_fraction`` (the share of weights whose window was
flat, or had a change point) to metrics.jsonl. With ``change_point_guard`` a window where MATLAB's
``ischange(x, 'mean')`` finds a change point (``lyapunov.change_points``, on the unrounded values)
gets exponent 0 and counts as degenerate, as the authors' LE_window.m did.

Memory on the device: a (2W, P) ring, where snapshot t is written to rows t mod W and t mod W + W
so that the last W snapshots in time order are always the rows [c, c + W), c = (t + 1) mod W:
a view, never a copy; the (n_windows, P) exponent matrix that is the result; for ``updates`` the
previous weights (P). Never the whole trajectory. All of it is in `state_dict`, so a killed run
resumes bitwise. When the run ends the result is written to ``exponents.pt`` and ``risk.json`` in
``results_dir`` (before the loop writes done.json, so a finished run always has them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import torch

from branches.chaos.accuracy import accuracy_of
from lyapunov import largest_lyapunov, window_starts, window_stride
from lyapunov.change_points import has_change_point
from platforms.storage import load_torch, read_json, save_torch, write_json
from training.hooks import Hook, TrainState
from training.losses import Loss, evaluate

RECORDS = ("weights", "updates")
EXPONENTS_FILE = "exponents.pt"
RISK_FILE = "risk.json"


class Recording(NamedTuple):
    """The analysis of one trajectory: what the chaos-causality test reads."""

    exponents: torch.Tensor  # (n_windows, P) float64; 0 where `degenerate`
    degenerate: torch.Tensor  # (n_windows, P) bool: a static (range < threshold) or undefined window
    risk: torch.Tensor  # (n_windows,) float64: 1 - accuracy on the risk split at each window's end
    window_end_iterations: torch.Tensor  # (n_windows,) int64: the optimizer step ending each window
    layers: list[str]  # analysed weights, in the order of the columns
    shapes: list[list[int]]  # their shapes (columns are their flattened entries, layer after layer)


def window_end_iterations(steps: int, window: int, overlap: float) -> torch.Tensor:
    """The optimizer step after which each window closes, for a recording of `steps` steps."""
    return window_starts(steps, window, overlap) + window


class TrajectoryRecorder(Hook):
    """See the module docstring. The run must start at step 0 and last `steps` steps."""

    key = "trajectory_recorder"

    def __init__(self, layers: list[str], *, steps: int, window: int, overlap: float, record: str,
                 risk_loader: Any, loss: Loss, lyapunov_options: dict[str, Any],
                 results_dir: Optional[Path] = None, risk_split: str = "val",
                 correct: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
                 change_point_guard: bool = False):
        if record not in RECORDS:
            raise ValueError(f"record must be one of {RECORDS}, got {record!r}")
        self.layers, self.window, self.record = list(layers), window, record
        self.stride = window_stride(window, overlap)
        self.ends = window_end_iterations(steps, window, overlap)
        self.risk_loader, self.loss, self.options = risk_loader, loss, dict(lyapunov_options)
        self.results_dir, self.risk_split = results_dir, risk_split
        self.correct, self.change_point_guard = correct, change_point_guard
        self.count = 0  # snapshots recorded so far
        self.ring: Optional[torch.Tensor] = None
        self.previous: Optional[torch.Tensor] = None
        self.exponents: Optional[torch.Tensor] = None
        self.degenerate: Optional[torch.Tensor] = None
        self.risk: Optional[torch.Tensor] = None
        self._weights: list[torch.Tensor] = []
        self._loaded: Optional[dict] = None

    # ---- the loop's calls ----------------------------------------------------------------------
    def on_start(self, state: TrainState) -> None:
        parameters = dict(state.model.named_parameters())
        self._weights = [parameters[name] for name in self.layers]
        flat = self._flat()
        n_windows, p, device = len(self.ends), flat.numel(), flat.device
        self.ring = torch.zeros(2 * self.window, p, dtype=torch.float64, device=device)
        self.exponents = torch.zeros(n_windows, p, dtype=torch.float64, device=device)
        self.degenerate = torch.zeros(n_windows, p, dtype=torch.bool, device=device)
        self.risk = torch.zeros(n_windows, dtype=torch.float64, device=device)
        self.previous = flat if self.record == "updates" else None
        if self._loaded is not None:
            self._restore(self._loaded, device)
            self._loaded = None
        elif state.iteration != 0:
            raise ValueError("a trajectory recording starts at step 0 (or resumes from its checkpoint)")

    def after_optimizer_step(self, state: TrainState) -> None:
        flat = self._flat()
        snapshot = flat - self.previous if self.record == "updates" else flat
        if self.record == "updates":
            self.previous = flat
        row = self.count % self.window
        self.ring[row] = snapshot
        self.ring[row + self.window] = snapshot
        self.count += 1
        closed = self.count - self.window
        if closed >= 0 and closed % self.stride == 0 and closed // self.stride < len(self.ends):
            self._close_window(state, closed // self.stride)

    def on_end(self, state: TrainState) -> None:
        if self.results_dir is not None and state.platform.is_primary:
            save_recording(self.result(), self.results_dir, self.risk_split)

    def state_dict(self) -> dict:
        filled = self._filled()
        state = {"count": self.count, "ring": self.ring, "exponents": self.exponents[:filled],
                 "degenerate": self.degenerate[:filled], "risk": self.risk[:filled]}
        if self.previous is not None:
            state["previous"] = self.previous
        return state

    def load_state_dict(self, state: dict) -> None:
        self._loaded = state  # applied in on_start, once the buffers exist

    # ---- results -------------------------------------------------------------------------------
    def result(self) -> Recording:
        """What has been recorded (all windows once the run has ended), on the CPU."""
        filled = self._filled()
        shapes = [list(weight.shape) for weight in self._weights]
        return Recording(self.exponents[:filled].cpu(), self.degenerate[:filled].cpu(), self.risk[:filled].cpu(),
                         self.ends[:filled].clone(), list(self.layers), shapes)

    # ---- internals -----------------------------------------------------------------------------
    def _flat(self) -> torch.Tensor:
        return torch.cat([weight.detach().reshape(-1) for weight in self._weights]).to(torch.float64)

    def _filled(self) -> int:
        """Windows closed so far."""
        closed = self.count - self.window
        return 0 if closed < 0 else min(closed // self.stride + 1, len(self.ends))

    def _close_window(self, state: TrainState, index: int) -> None:
        oldest = self.count % self.window
        series = self.ring[oldest : oldest + self.window].T  # (P, W), in time order: a view
        result = largest_lyapunov(series, **self.options, skip_degenerate=True)
        exponent, degenerate = result.exponent, result.degenerate
        if self.change_point_guard:
            changed = has_change_point(series)
            exponent, degenerate = exponent.masked_fill(changed, 0.0), degenerate | changed
        self.exponents[index] = exponent
        self.degenerate[index] = degenerate
        if self.correct is None:
            accuracy = evaluate(state.model, self.risk_loader, self.loss, prefix="risk")["risk_accuracy"]
        else:
            accuracy = accuracy_of(state.model, self.risk_loader, self.correct)
        self.risk[index] = 1.0 - accuracy
        static = degenerate.double().mean().item()
        state.log.write(state.iteration, str(state.step), {"risk": 1.0 - accuracy, "static_fraction": static})

    def _restore(self, state: dict, device: torch.device) -> None:
        self.count = int(state["count"])
        self.ring.copy_(state["ring"].to(device))
        filled = state["exponents"].shape[0]
        self.exponents[:filled] = state["exponents"].to(device)
        self.degenerate[:filled] = state["degenerate"].to(device)
        self.risk[:filled] = state["risk"].to(device)
        if "previous" in state:
            self.previous = state["previous"].to(device)


def save_recording(recording: Recording, directory: Path, risk_split: str) -> None:
    """exponents.pt (tensors, `weights_only` loadable) and risk.json (the series, readable)."""
    directory = Path(directory)
    save_torch({"exponents": recording.exponents, "degenerate": recording.degenerate,
                "window_end_iterations": recording.window_end_iterations,
                "layers": recording.layers, "shapes": recording.shapes}, directory / EXPONENTS_FILE)
    write_json({"split": risk_split, "window_end_iterations": recording.window_end_iterations.tolist(),
                "risk": recording.risk.tolist()}, directory / RISK_FILE)


def load_recording(directory: Path) -> Optional[Recording]:
    """The recording saved in `directory`, or None when it is missing or damaged."""
    try:
        tensors = load_torch(Path(directory) / EXPONENTS_FILE)
        risk = read_json(Path(directory) / RISK_FILE)["risk"]
        recording = Recording(tensors["exponents"], tensors["degenerate"], torch.tensor(risk, dtype=torch.float64),
                              tensors["window_end_iterations"], list(tensors["layers"]),
                              [list(shape) for shape in tensors["shapes"]])
    except Exception:  # missing, truncated, or not ours
        return None
    if recording.exponents.shape != recording.degenerate.shape or recording.exponents.shape[0] != len(risk):
        return None
    return recording
