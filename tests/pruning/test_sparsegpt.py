"""SparseGPT's weights equal a brute-force sequential solve for the mask it chose (any block size,
unstructured and N:M), its masks have the counts asked for, and on trained layers its
reconstruction error is below Wanda's, which is below magnitude's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pruning.mask import Mask
from pruning.post_training.calibration import CalibrationData
from pruning.post_training.sparsegpt import dampened, sparsegpt_layer, sparsegpt_prune
from pruning.post_training.wanda import prune_rows, wanda_prune


def brute_force(weight, gram, alive, damp=0.01):
    """Column by column from the left: zero the column's pruned entries, then re-solve the damped
    least squares min (w0 - w)ᵀ H (w0 - w) for the columns to the right, those up to it fixed."""
    H, w0 = dampened(gram, weight, damp)
    w = w0.clone()
    columns = w.shape[1]
    for j in range(columns):
        w[:, j] = w[:, j] * alive[:, j]
        fixed, free = slice(0, j + 1), slice(j + 1, columns)
        if j + 1 < columns:
            w[:, free] = w0[:, free] + torch.linalg.solve(H[free, free], H[free, fixed] @ (w0 - w)[:, fixed].T).T
    return w


def layer_problem(seed=0, rows=6, columns=16):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, columns, generator=generator, dtype=torch.float64)
    mixing = torch.randn(columns, columns, generator=generator, dtype=torch.float64)
    x = torch.randn(50, columns, generator=generator, dtype=torch.float64) @ mixing  # correlated inputs
    return weight, x.T @ x


@pytest.mark.parametrize("blocksize", [1, 3, 4, 16, 128])
@pytest.mark.parametrize("nm", [None, (2, 4), (1, 4)])
def test_equals_the_brute_force_sequential_solve(blocksize, nm):
    if nm is not None and blocksize % nm[1]:
        return
    weight, gram = layer_problem()
    alive = torch.ones_like(weight, dtype=torch.bool)
    new, kept = sparsegpt_layer(weight, gram, alive, 40, nm=nm, blocksize=blocksize)
    assert torch.allclose(new, brute_force(weight, gram, kept), atol=1e-10)
    assert torch.all(new[~kept] == 0)
    if nm is None:
        assert int((~kept).sum()) == 40
    else:
        assert torch.all(kept.reshape(-1, nm[1]).sum(1) == nm[0])


def test_lazy_batching_changes_nothing_for_a_fixed_mask():
    weight, gram = layer_problem(seed=1)
    alive = torch.rand(weight.shape, generator=torch.Generator().manual_seed(2)) > 0.5
    results = [sparsegpt_layer(weight, gram, alive, 0, blocksize=b)[0] for b in (1, 5, 16)]
    assert all(torch.allclose(results[0], r, atol=1e-10) for r in results[1:])
    assert torch.allclose(results[0], brute_force(weight, gram, alive), atol=1e-10)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc = nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def trained_net():
    torch.manual_seed(0)
    scales = torch.ones(16)
    scales[:3] = 8.0  # a few outlier features, as in language models' activations
    x = torch.randn(512, 16) * scales
    teacher = nn.Linear(16, 4)
    y = teacher(x / scales).argmax(1)
    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return net.double(), x.double()


def test_reconstruction_error_sparsegpt_below_wanda_below_magnitude_on_a_trained_network():
    net, x = trained_net()
    names = ["fc1.weight", "fc2.weight"]
    mask = Mask({name: torch.ones_like(dict(net.named_parameters())[name], dtype=torch.bool) for name in names})
    removals = {name: mask[name].numel() // 2 for name in names}
    data = CalibrationData(x[:256], batch_size=64)
    magnitude = {name: wanda_prune_magnitude(net, name, removals[name]) for name in names}
    wanda = wanda_prune(net, mask, removals, data)
    sparse_mask, reconstructed = sparsegpt_prune(net, mask, removals, data, blocksize=16)

    def error(layer_weights):
        """The first layer's output error on the calibration inputs (layer by layer, as the papers measure)."""
        return ((x[:256] @ (layer_weights - net.fc1.weight).T).square().sum()).item()

    w = net.fc1.weight
    assert error(reconstructed.fc1.weight) < error(w * wanda["fc1.weight"]) < error(w * magnitude["fc1.weight"])
    assert int(sparse_mask["fc1.weight"].sum()) == int(wanda["fc1.weight"].sum()) == 512


def wanda_prune_magnitude(net, name, count):
    weight = dict(net.named_parameters())[name].detach().abs().flatten()
    keep = torch.ones_like(weight, dtype=torch.bool)
    keep[torch.sort(weight, stable=True).indices[:count]] = False
    return keep.view(dict(net.named_parameters())[name].shape)


def test_on_the_trained_hidden_layer_too():
    """fc2 alone, from its dense inputs: SparseGPT below both. (Wanda's edge over magnitude comes
    from inputs of unequal scales, as fc1's outlier features; this layer's ReLU features have none
    to speak of, and there magnitude's per-layer ranking beats Wanda's per-row one.)"""
    net, x = trained_net()
    with torch.no_grad():
        hidden = torch.relu(net.fc1(x[:256]))
    w = net.fc2.weight.detach()
    alive = torch.ones_like(w, dtype=torch.bool)
    reconstructed, _ = sparsegpt_layer(w, hidden.T @ hidden, alive, w.numel() // 2, blocksize=16)
    wanda_kept = prune_rows(w.abs() * hidden.norm(dim=0)[None, :], alive, w.numel() // 2)
    magnitude_kept = wanda_prune_magnitude(net, "fc2.weight", w.numel() // 2)

    def error(weights):
        return (hidden @ (weights - w).T).square().sum().item()

    assert error(reconstructed) < min(error(w * wanda_kept), error(w * magnitude_kept))
