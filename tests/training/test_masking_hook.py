"""MaskHook skips zeroing gradients only where that cannot change anything: plain SGD."""

from __future__ import annotations

import pytest
import torch

from pruning.mask import Mask
from tests.pruning.test_nets import TinyMLP
from training.hooks import TrainState
from training.masking import MaskHook, keeps_per_weight_state


def train_steps(optimizer_factory, force_grad_zeroing: bool) -> tuple[dict, torch.optim.Optimizer]:
    model = TinyMLP(seed=0)
    generator = torch.Generator().manual_seed(1)
    mask = Mask({n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()
                 if n in model.prunable_layer_names})
    optimizer = optimizer_factory(model.parameters())
    hook = MaskHook(mask)
    state = TrainState(model, optimizer, 0, 1, None)
    hook.on_start(state)
    if force_grad_zeroing:
        hook.zero_grads = True
    for step in range(5):
        x = torch.randn(8, 4, generator=generator)
        loss = model(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        hook.before_optimizer_step(state)
        optimizer.step()
        hook.after_optimizer_step(state)
    return {k: v.clone() for k, v in model.state_dict().items()}, optimizer


def test_plain_sgd_skips_gradient_zeroing_with_bitwise_the_same_weights():
    def plain(params):
        return torch.optim.SGD(params, lr=0.1, weight_decay=1e-3)
    skipped, optimizer = train_steps(plain, force_grad_zeroing=False)
    zeroed, _ = train_steps(plain, force_grad_zeroing=True)
    assert not keeps_per_weight_state(optimizer)
    assert all(torch.equal(skipped[k], zeroed[k]) for k in skipped)


@pytest.mark.parametrize("factory", [lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                                     lambda p: torch.optim.Adam(p, lr=0.01)])
def test_stateful_optimizers_never_see_pruned_gradients(factory):
    weights, optimizer = train_steps(factory, force_grad_zeroing=False)
    assert keeps_per_weight_state(optimizer)
    for parameter in optimizer.param_groups[0]["params"]:
        for buffer in optimizer.state[parameter].values():
            if torch.is_tensor(buffer) and buffer.shape == parameter.shape:
                pruned = parameter.detach() == 0
                assert (buffer[pruned] == 0).all()  # momentum / Adam moments untouched where pruned
