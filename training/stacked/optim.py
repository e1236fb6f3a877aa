"""SGD and Adam over stacked parameters, each member with its own hyperparameters and state.

The arithmetic is torch.optim's (foreach, torch 2.x): SGD takes d = g + wd·p, then with momentum
buf = m·buf + d (buf = d at the first step), d = buf (or d + m·buf with Nesterov), p -= lr·d; Adam
(betas 0.9, 0.999, eps 1e-8, as build_optimizer makes it) takes d = g + wd·p, m1 = lerp(m1, d, 0.1),
m2 = 0.999·m2 + 0.001·d², p -= lr/(1-0.9^t) · m1 / (sqrt(m2)/sqrt(1-0.999^t) + eps). A value the
members share is a Python scalar, as in torch.optim; one that differs is an (N, 1, ...) tensor.

Each member's state moves to and from an ordinary torch optimizer over its own module
(`export_member`, `import_member`), so its checkpoint.pt is what the loop alone would write, and
the loop alone can resume it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch

from foundations.bundles import TrainingHparams

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
Factor = Union[float, torch.Tensor]


def per_member(values: Sequence[float], like: torch.Tensor) -> Factor:
    """A scalar when every member has the same value, else (N,) on `like`'s device and dtype."""
    if all(v == values[0] for v in values):
        return float(values[0])
    return torch.tensor(list(values), dtype=like.dtype, device=like.device)


def _shaped(factor: Factor, p: torch.Tensor) -> Factor:
    return factor if isinstance(factor, float) else factor.view(-1, *([1] * (p.dim() - 1)))


def _add_scaled(target: torch.Tensor, other: torch.Tensor, factor: Factor) -> torch.Tensor:
    """target += factor · other, in place."""
    if isinstance(factor, float):
        return target.add_(other, alpha=factor)
    return target.addcmul_(other, _shaped(factor, target))


class StackedOptimizer:
    def __init__(self, hparams: Sequence[TrainingHparams], params: Sequence[torch.Tensor]):
        self.kind = hparams[0].optimizer_name
        self.nesterov = bool(hparams[0].nesterov)
        self.params = list(params)
        like = self.params[0]
        self.momenta = [float(h.momentum or 0.0) for h in hparams]
        self.momentum = per_member(self.momenta, like)
        self.decay = per_member([float(h.weight_decay or 0.0) for h in hparams], like)
        self.steps = 0  # optimizer steps taken (Adam's t; SGD: whether the buffers exist)
        if self.kind == "sgd":
            self.buffers = [torch.zeros_like(p) for p in self.params] if any(self.momenta) else []
        else:
            self.exp_avg = [torch.zeros_like(p) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lrs: Sequence[float]) -> None:
        lr = per_member(lrs, self.params[0])
        grads = [g if self.decay == 0.0 else _add_scaled(g.clone(), p, self.decay) for g, p in zip(grads, self.params)]
        if self.kind == "sgd":
            self._sgd(grads, lr)
        else:
            self._adam(grads, lr)
        self.steps += 1

    def _sgd(self, grads, lr: Factor) -> None:
        negative = -lr
        for k, (p, g) in enumerate(zip(self.params, grads)):
            d = g
            if self.buffers:
                buf = self.buffers[k]
                if self.steps == 0:
                    buf.copy_(g)
                else:
                    buf.mul_(_shaped(self.momentum, buf)).add_(g)
                d = _add_scaled(g.clone(), buf, self.momentum) if self.nesterov else buf
            _add_scaled(p, d, negative)

    def _adam(self, grads, lr: Factor) -> None:
        t = self.steps + 1
        correction1, correction2 = 1 - BETA1 ** t, (1 - BETA2 ** t) ** 0.5
        size = -lr / correction1
        for p, g, m1, m2 in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            m1.lerp_(g, 1 - BETA1)
            m2.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            denominator = m2.sqrt().div_(correction2).add_(EPS)
            if isinstance(size, float):
                p.addcdiv_(m1, denominator, value=size)
            else:
                p.add_(m1 / denominator * _shaped(size, p))

    @torch.no_grad()
    def reset_member(self, index: int, k: int, where: torch.Tensor) -> None:
        """Zero member `index`'s per-weight state of parameter `k` where `where` is True (a regrown
        weight starts without history: training.optimizers.reset_state, for one member)."""
        if self.kind == "sgd":
            states = [self.buffers[k]] if self.buffers else []
        else:
            states = [self.exp_avg[k], self.exp_avg_sq[k]]
        for state in states:
            state[index].masked_fill_(where, 0)

    # ---- one member's state as an ordinary torch optimizer's ------------------------------------
    def export_member(self, index: int, optimizer: torch.optim.Optimizer, lr: float) -> None:
        """Write member `index`'s state into `optimizer` (built by build_optimizer over the member's
        own module, whose parameters are in the stacked order), with the last step's `lr`."""
        members = [p for group in optimizer.param_groups for p in group["params"]]
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.state.clear()
        if not self.steps:
            return
        for k, p in enumerate(members):
            if self.kind == "sgd":
                if self.momenta[index]:
                    optimizer.state[p] = {"momentum_buffer": self.buffers[k][index].clone()}
            else:
                optimizer.state[p] = {"step": torch.tensor(float(self.steps)),
                                      "exp_avg": self.exp_avg[k][index].clone(),
                                      "exp_avg_sq": self.exp_avg_sq[k][index].clone()}

    @torch.no_grad()
    def import_member(self, index: int, optimizer: torch.optim.Optimizer) -> None:
        """Take member `index`'s state from `optimizer` (a resumed checkpoint's)."""
        members = [p for group in optimizer.param_groups for p in group["params"]]
        for k, p in enumerate(members):
            state = optimizer.state.get(p) or {}
            if self.kind == "sgd":
                if state.get("momentum_buffer") is not None:
                    self.buffers[k][index].copy_(state["momentum_buffer"])
                    self.steps = max(self.steps, 1)
            elif "step" in state:
                self.exp_avg[k][index].copy_(state["exp_avg"])
                self.exp_avg_sq[k][index].copy_(state["exp_avg_sq"])
                self.steps = int(state["step"].item())
