"""pruning/scores/opd.py: theta^2 times laplace-torch's diagonal posterior precision, and oneshot's opd."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from datasets.memory_loader import InMemoryLoader
from pruning import ScoringData, prune_in_rounds, scores
from pruning.mask import Mask
from pruning.scores.opd import weight_decay_precision
from tests.cli.test_branches import load, location
from tests.conftest import TINY

laplace = pytest.importorskip("laplace")


def problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    model.prunable_layer_names = ["0.weight", "2.weight"]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    loader = InMemoryLoader(x, y, num_classes=3, batch_size=16, mean=(), std=(), transformation_seed=0)
    return model, loader, DataLoader(TensorDataset(x, y), batch_size=16)


def reference_posterior(model, data, precision: float) -> dict[str, torch.Tensor]:
    la = laplace.DiagLaplace(model, "classification", prior_precision=precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        la.fit(data)
    flat = la.posterior_precision.detach()
    pieces = flat.split([p.numel() for p in model.parameters()])
    return {name: piece.view_as(p) for (name, p), piece in zip(model.named_parameters(), pieces)}


@pytest.mark.parametrize("weight_decay", [None, 1e-2])
def test_opd_is_theta_squared_times_the_laplace_posterior_with_the_weight_decay_prior(weight_decay):
    model, loader, data = problem()
    source = ScoringData(examples=loader) if weight_decay is None else SimpleNamespace(examples=loader,
                                                                                       weight_decay=weight_decay)
    got = scores.get("opd")(model, Mask.ones_like(model), source)
    precision = weight_decay_precision(weight_decay, 40)
    assert precision == (0.0 if weight_decay is None else pytest.approx(0.4))
    expected = reference_posterior(model, data, max(precision, 1e-30))  # laplace-torch wants a positive prior
    weights = dict(model.named_parameters())
    assert set(got) == {"0.weight", "2.weight"}
    for name, score in got.items():
        torch.testing.assert_close(score, weights[name].detach().square() * expected[name], rtol=1e-5, atol=1e-9)


def test_pruned_weights_score_zero_and_leave_the_posterior():
    model, loader, _ = problem()
    mask = Mask.ones_like(model)
    first = mask["0.weight"].clone()
    first[:, 0] = False
    mask = Mask({"0.weight": first, "2.weight": mask["2.weight"]})
    got = scores.get("opd")(model, mask, ScoringData(examples=loader))
    assert (got["0.weight"][:, 0] == 0).all() and (got["0.weight"][:, 1:] > 0).all()
    pruned = prune_in_rounds(model, "opd", 0.5, 2, data=ScoringData(examples=loader))
    assert pruned.num_unpruned == round(0.5 * mask.num_total)


def test_oneshot_opd_prunes_the_lowest_opd_of_the_trained_trunk(cli, dataset_root):
    code, _, err = cli("branch", "oneshot", *TINY, "--strategy=opd", "--prune_step=3ep", "--prune_fraction=0.7")
    assert code == 0, err
    path = location(cli, "branch", "oneshot", *TINY, "--strategy=opd", "--prune_step=3ep", "--prune_fraction=0.7")
    mask = load(path / "mask.pt")
    assert sum(int(m.sum()) for m in mask.values()) == round(0.3 * sum(m.numel() for m in mask.values()))
    # oracle: the same score by hand on the trunk's final weights and the whole training set
    from runs.target import train_target
    trunk, _ = train_target().parse([*TINY, f"--root={cli.root}", f"--dataset_root={dataset_root}", "--device=cpu"])
    model = trunk.model_at(trunk.end_step)
    assert trunk.desc.training.weight_decay == 1e-4  # the prior comes from the trunk's weight decay
    by_hand = scores.get("opd")(model, Mask.ones_like(model), ScoringData(examples=trunk.loader(True),
                                                                          weight_decay=1e-4))
    kept = torch.cat([by_hand[n][mask[n]] for n in mask])
    dropped = torch.cat([by_hand[n][~mask[n]] for n in mask])
    assert kept.min() >= dropped.max()

