"""The mask changes of the sparse-training branches, against hand-computed oracles: the cubic
schedule removes exactly its counts, and every SET/RigL update keeps each layer's count, drops the
smallest active magnitudes, grows (RigL) the largest dense-gradient magnitudes among the inactive,
and starts grown weights at zero with their optimizer state reset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from branches.sparse.dynamic import UpdateHparams, UpdateSteps
from branches.sparse.gmp import GradualPruning, Schedule, prune_to_schedule, scheduled_count
from branches.sparse.rigl import GradientRegrowth
from branches.sparse.schedule import drop_fraction, gmp_density, gmp_steps, is_update_step
from branches.sparse.set_training import RandomRegrowth
from pruning.allocation import kept_count
from pruning.mask import Mask
from training.hooks import TrainState


class Tiny(nn.Module):
    prunable_layer_names = ["a.weight", "b.weight"]
    output_module = "b"

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 2, bias=False)  # 8 weights
        self.b = nn.Linear(2, 3, bias=False)  # 6 weights

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_the_cubic_schedule_of_zhu_and_gupta():
    assert gmp_steps(10, 50, 10) == [10, 20, 30, 40, 50]
    for t, progress in [(10, 0), (20, 0.25), (30, 0.5), (45, 0.75), (50, 1), (99, 1)]:
        assert gmp_density(t, 10, 50, 10, 0.9, 0.1) == pytest.approx(0.1 + 0.8 * (1 - progress) ** 3)
    assert gmp_density(9, 10, 50, 10, 0.9, 0.1) == 1.0  # before the first pruning step: dense


def test_the_cosine_drop_fraction_and_the_update_steps():
    assert drop_fraction(0, 0, 100, 0.3) == pytest.approx(0.3)
    assert drop_fraction(50, 0, 100, 0.3) == pytest.approx(0.15)
    assert drop_fraction(100, 0, 100, 0.3) == pytest.approx(0.0, abs=1e-12)
    assert drop_fraction(50, 0, 100, 0.3, "constant") == 0.3
    assert [t for t in range(0, 40) if is_update_step(t, 0, 30, 10)] == [10, 20, 30]


def test_gradual_pruning_removes_exactly_the_scheduled_counts_at_every_step():
    torch.manual_seed(0)
    weights = {"a": torch.randn(30, 20), "b": torch.randn(10, 30)}
    when = Schedule(begin=0, end=60, every=10)
    for groups, initial, final in [
        ([("a",), ("b",)], {("a",): 1.0, ("b",): 0.8}, {("a",): 0.1, ("b",): 0.3}),  # layerwise
        ([("a", "b")], {("a", "b"): 1.0}, {("a", "b"): 0.05}),  # one global ranking
    ]:
        mask = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
        for t in range(0, 61, 10):
            before = {name: m.clone() for name, m in mask.items()}
            weights = {name: w + 0.01 * torch.randn_like(w) for name, w in weights.items()}  # training moves them
            mask = prune_to_schedule(weights, mask, t, when, groups, initial, final)
            for group in groups:
                size = sum(weights[n].numel() for n in group)
                active = sum(int(mask[n].sum()) for n in group)
                density = final[group] + (initial[group] - final[group]) * (1 - t / 60) ** 3
                assert active == kept_count(size, density) == scheduled_count(size, t, when, initial[group],
                                                                              final[group])
                # the removed are the smallest magnitudes of those active before; none comes back
                removed = torch.cat([(before[n] & ~mask[n]).reshape(-1) for n in group])
                alive = torch.cat([mask[n].reshape(-1) for n in group])
                magnitude = torch.cat([weights[n].abs().reshape(-1) for n in group])
                if removed.any():
                    assert magnitude[removed].max() <= magnitude[alive].min()
                assert not any((mask[n] & ~before[n]).any() for n in group)


def step(hook, model, optimizer, iteration, gradients):
    """One training step as the loop runs it, with the gradients given."""
    state = TrainState(model, optimizer, iteration, 1, Path("."))
    for name, parameter in model.named_parameters():
        parameter.grad = gradients[name].clone()
    hook.before_optimizer_step(state)
    optimizer.step()
    state.iteration = iteration + 1
    hook.after_optimizer_step(state)
    return state


def tiny_setup(lr=0.0):
    model = Tiny()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([[0.5, -0.1, 0.0, 0.3], [0.0, -0.2, 0.0, 0.05]]))
        model.b.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -2.0], [0.4, 0.0]]))
    mask = Mask({"a.weight": torch.tensor([[1, 1, 0, 1], [0, 1, 0, 1]], dtype=torch.bool),
                 "b.weight": torch.tensor([[1, 0], [0, 1], [1, 0]], dtype=torch.bool)})
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, mask, optimizer


def test_a_rigl_update_by_hand():
    model, mask, optimizer = tiny_setup()
    h = UpdateHparams(drop_fraction=0.4, drop_anneal="constant")
    hook = GradientRegrowth(mask, None, UpdateSteps(begin=0, end=10, every=2), h)
    hook.on_start(TrainState(model, optimizer, 0, 1, Path(".")))
    gradients = {"a.weight": torch.tensor([[0.0, 0.0, 0.9, 0.0], [-0.7, 0.0, 0.1, 0.0]]),
                 "b.weight": torch.tensor([[0.0, 0.3], [-0.5, 0.0], [0.0, 0.2]])}
    step(hook, model, optimizer, 0, gradients)  # not an update step: nothing changes
    assert hook.mask["a.weight"].equal(mask["a.weight"])
    # momentum that inactive weights would carry had they been active before: it must not survive regrowth
    for parameter in model.parameters():
        optimizer.state[parameter]["momentum_buffer"].fill_(1.0)
    step(hook, model, optimizer, 1, gradients)  # update after step 2 (lr = 0: the weights are the hand's)
    # layer a: 5 active, drop int(5 * 0.4) = 2 smallest |w|: 0.05 (a[1,3]) and -0.1 (a[0,1]); grow the
    # 2 largest |grad| among the inactive after the drop: 0.9 (a[0,2]) and 0.7 (a[1,0])
    assert hook.mask["a.weight"].int().tolist() == [[1, 0, 1, 1], [1, 1, 0, 0]]
    # layer b: 3 active, drop int(1.2) = 1: 0.4 (b[2,0]); grow |grad| 0.5 (b[1,0])
    assert hook.mask["b.weight"].int().tolist() == [[1, 0], [1, 1], [0, 0]]
    for name, parameter in model.named_parameters():
        assert int(hook.mask[name].sum()) == int(mask[name].sum())  # counts unchanged
        new = hook.mask[name] & ~mask[name]
        assert torch.all(parameter.detach()[new] == 0)  # grown weights start at zero
        assert torch.all(optimizer.state[parameter]["momentum_buffer"][new] == 0)  # with no momentum
        assert torch.all(parameter.detach()[~hook.mask[name]] == 0)  # the dropped are zero
        kept_old = hook.mask[name] & mask[name]
        assert torch.all(optimizer.state[parameter]["momentum_buffer"][kept_old] != 0)  # the rest keep theirs
    assert hook.gradients is None  # the dense gradient is held only for the update
    assert [entry[0] for entry in hook.history] == [0, 2]


def test_the_dense_gradient_is_read_only_before_update_steps():
    model, mask, optimizer = tiny_setup()
    hook = GradientRegrowth(mask, None, UpdateSteps(begin=0, end=10, every=3), UpdateHparams())
    hook.on_start(TrainState(model, optimizer, 0, 1, Path(".")))
    reads = []
    original = hook.new_mask

    def spy(state):
        reads.append((state.iteration, hook.gradients is not None))
        return original(state)

    hook.new_mask = spy
    gradients = {name: torch.ones_like(p) for name, p in model.named_parameters()}
    for iteration in range(12):
        state = TrainState(model, optimizer, iteration, 1, Path("."))
        for name, parameter in model.named_parameters():
            parameter.grad = gradients[name].clone()
        hook.before_optimizer_step(state)
        assert (hook.gradients is not None) == (iteration + 1 in (3, 6, 9))
        optimizer.step()
        state.iteration = iteration + 1
        hook.after_optimizer_step(state)
    assert reads == [(3, True), (6, True), (9, True)]


def test_a_set_update_keeps_counts_drops_the_smallest_and_grows_among_the_inactive():
    model, mask, optimizer = tiny_setup(lr=0.05)
    torch.manual_seed(1)
    with torch.no_grad():
        model.a.weight.copy_(torch.randn(2, 4))
    hook = RandomRegrowth(mask, None, UpdateSteps(begin=0, end=10, every=1),
                          UpdateHparams(drop_fraction=0.5, drop_anneal="constant"), seed=7)
    hook.on_start(TrainState(model, optimizer, 0, 1, Path(".")))
    gradients = {name: torch.randn_like(p) for name, p in model.named_parameters()}
    for iteration in range(4):
        before = {name: tensor.clone() for name, tensor in hook.mask.items()}
        # the weights the update sees: after the optimizer step, with the old mask applied
        weights_after = {}
        state = TrainState(model, optimizer, iteration, 1, Path("."))
        for name, parameter in model.named_parameters():
            parameter.grad = gradients[name].clone()
        hook.before_optimizer_step(state)
        optimizer.step()
        with torch.no_grad():
            weights_after = {name: p.detach().clone() * before[name] for name, p in model.named_parameters()}
        state.iteration = iteration + 1
        hook.after_optimizer_step(state)
        for name in before:
            after = hook.mask[name]
            assert int(after.sum()) == int(before[name].sum())
            # the n - floor(n * 0.5) largest active magnitudes all stay; any active weight that left was
            # among the floor(n * 0.5) smallest (a dropped weight may be regrown at once, as in the RigL code)
            active = before[name].reshape(-1).nonzero().squeeze(1)
            drop = int(active.numel() * 0.5)
            order = torch.sort(weights_after[name].abs().reshape(-1)[active], stable=True).indices
            smallest, largest = active[order[:drop]], active[order[drop:]]
            assert after.reshape(-1)[largest].all()
            left = (before[name] & ~after).reshape(-1).nonzero().squeeze(1)
            assert set(left.tolist()) <= set(smallest.tolist())
            new = after & ~before[name]
            assert torch.all(model.get_parameter(name).detach()[new] == 0)
            assert torch.all(model.get_parameter(name).detach()[~after] == 0)


def test_gradual_pruning_hook_only_removes():
    model, _, optimizer = tiny_setup(lr=0.1)
    dense = Mask.ones_like(model)
    when = Schedule(begin=0, end=4, every=2)
    hook = GradualPruning(dense, None, when, [("a.weight",), ("b.weight",)],
                          {("a.weight",): 1.0, ("b.weight",): 1.0}, {("a.weight",): 0.25, ("b.weight",): 0.5})
    hook.on_start(TrainState(model, optimizer, 0, 1, Path(".")))
    gradients = {name: torch.randn_like(p) for name, p in model.named_parameters()}
    for iteration in range(6):
        step(hook, model, optimizer, iteration, gradients)
    assert [entry[0] for entry in hook.history] == [0, 2, 4]
    # at 2: a at 0.25 + 0.75 * 0.125 -> 8 - floor(0.65625 * 8) = 3; b: 6 - floor(0.4375 * 6) = 4; at 4: 2 and 3
    assert hook.history[1][1] == {"a.weight": 3, "b.weight": 4}
    assert hook.history[2][1] == {"a.weight": 2, "b.weight": 3}


def test_training_flops_as_the_rigl_paper_counts_them():
    from branches.sparse.cost import dense_training_flops, forward_at, training_flops
    model, example = Tiny(), torch.zeros(4)
    # forward per example: 2 * (4*2) + 2 * (2*3) = 28 dense; a at half its weights: 2 * 4 + 12 = 20
    assert forward_at(model, example, {"a.weight": 8, "b.weight": 6}) == 28
    assert forward_at(model, example, {"a.weight": 4, "b.weight": 6}) == 20
    # 3 steps of batches 2, 1 (an epoch of 3 examples), 2: 3 * 20 * 5 examples
    sizes = {"iterations_per_epoch": 2, "num_examples": 3, "batch_size": 2}
    history = [[0, {"a.weight": 4, "b.weight": 6}]]
    assert training_flops(model, example, history, 3, **sizes) == 300
    # a RigL update after step 2 (index 1, one example): 2 f_S + f_D = 68 instead of 3 f_S = 60
    assert training_flops(model, example, history, 3, **sizes, dense_gradient_steps=[2]) == 308
    # the mask changes after step 1: steps 1 and 2 at a quarter of a (f = 2 * 2 + 12 = 16)
    history = [[0, {"a.weight": 4, "b.weight": 6}], [1, {"a.weight": 2, "b.weight": 6}]]
    assert training_flops(model, example, history, 3, **sizes) == 3 * (20 * 2 + 16 * 1 + 16 * 2)
    assert dense_training_flops(model, example, 3, **sizes) == 3 * 28 * 5


def test_the_selection_picks_what_a_stable_sort_would():
    from branches.sparse.update import extremes
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):  # few distinct values: many ties, which go to the lower position
        n = int(torch.randint(1, 40, (1,), generator=generator))
        values = torch.randint(0, 5, (n,), generator=generator).float()
        count = int(torch.randint(0, n + 1, (1,), generator=generator))
        for largest in (True, False):
            expected = torch.sort(values, stable=True, descending=largest).indices[:count]
            assert sorted(extremes(values, count, largest).tolist()) == sorted(expected.tolist())
