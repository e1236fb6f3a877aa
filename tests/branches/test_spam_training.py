"""SpaM training inside the loop: the penalty, one marginal-likelihood update, the weight-decay
equivalence, the saved priors and posteriors, and a bitwise resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import branches.spam.prior_training as spam_training
from bayes import fit_and_update_prior, make_prior, posterior_precision_diagonal
from branches.spam import spam
from branches.spam.prior_training import SpamHook, SpamHparams
from runs.target import branch_target
from tests.cli.test_branches import load, location
from tests.cli.test_train import Kill
from tests.conftest import TINY
from training.hooks import TrainState

ONE_UPDATE = [*TINY, "--prior=unit", "--curvature=diag_ggn", "--marglik_frequency=3", "--hyper_steps=20",
              "--sparsities=50", "--criteria=opd"]


def trunk_of(cli, dataset_root, argv):
    branch, _ = branch_target(spam.NAME).parse([*argv, f"--root={cli.root}", f"--dataset_root={dataset_root}",
                                                "--device=cpu"])
    return branch.trunk


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["scalar", "layer", "parameter", "unit"])
def test_the_penalty_is_half_theta_delta_theta_over_n_and_its_gradient_is_added(kind, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    hook = SpamHook(SpamHparams(prior=kind), model, "classification")
    prior = make_prior(kind, model)
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 1)
    hook.load_state_dict({"prior": prior.state_dict(), "optimizer": hook.hyper_optimizer.state_dict()})
    hook.on_start(TrainState(model, None, 0, 1, tmp_path, train_loader=SimpleNamespace(num_examples=50)))
    delta = {name: lp.exp() for name, lp in prior.log_precision().items()}
    if kind == "unit":  # by hand: out-unit times in-unit precision for the weight matrices
        a, b = prior.log_out[0].exp(), prior.log_in["0"].exp()
        assert torch.allclose(delta["0.weight"], a[:, None] * b[None, :])
    by_hand = sum((delta[name] * p.square()).sum() for name, p in model.named_parameters()) / 2 / 50
    torch.testing.assert_close(hook.penalty(), by_hand.detach())
    torch.testing.assert_close(hook.penalty(), prior.penalty(model, 50))
    # the gradient added before the step is the penalty's, on top of the task loss's
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    def task():
        return torch.nn.functional.cross_entropy(model(x), y)
    expected = torch.autograd.grad(task() + prior.penalty(model, 50), list(model.parameters()))
    model.zero_grad()
    task().backward()
    hook.before_optimizer_step(None)
    for parameter, gradient in zip(model.parameters(), expected):
        torch.testing.assert_close(parameter.grad, gradient)


def test_one_update_in_the_loop_is_fit_and_update_prior_by_hand(cli, dataset_root):
    code, out, err = cli("branch", "spam", *ONE_UPDATE)
    assert code == 0, err
    run = location(cli, "branch", "spam", *ONE_UPDATE) / "spam"
    trunk = trunk_of(cli, dataset_root, ONE_UPDATE)
    model = trunk.fresh_model()
    model.load_state_dict(load(run / "model_ep3_it0.pt"))
    prior = make_prior("unit", model, 1.0)
    curvature, value = fit_and_update_prior(model, trunk.loader(True).batches(2), prior, "classification",
                                            "diag_ggn", steps=20, lr=0.1)
    saved_prior, saved_posterior = load(run / "prior_precision.pt"), load(run / "posterior_precision.pt")
    expected = {name: lp.exp() for name, lp in prior.log_precision().items()}
    assert set(saved_prior) == set(expected) == {name for name, _ in model.named_parameters()}
    for name in expected:
        torch.testing.assert_close(saved_prior[name], expected[name].detach(), rtol=1e-6, atol=0)
    posterior = posterior_precision_diagonal(curvature, prior, names=list(expected))
    for name in posterior:
        torch.testing.assert_close(saved_posterior[name], posterior[name], rtol=1e-6, atol=0)
    logged = {r["name"]: r["value"] for r in records(run) if r["iteration"] == 12}
    assert logged["log_marglik"] == pytest.approx(value.item(), rel=1e-6)
    assert logged["prior_precision_max"] == pytest.approx(max(e.max().item() for e in expected.values()), rel=1e-6)
    assert [r["iteration"] for r in records(run) if r["name"] == "log_marglik"] == [12]  # only at epoch 3


def test_before_any_update_the_penalty_is_weight_decay_one_over_n(cli, tmp_path):
    """SpaM with the prior still at 1 trains as the trunk with weight decay 1/N (N = 256 here): its
    one update, at the end of epoch 3, comes after the last step (no update at all is refused)."""
    argv = ONE_UPDATE[:-2]
    assert cli("branch", "spam", *argv, "--sparsities=50", "--criteria=magnitude")[0] == 0
    spam_final = load(location(cli, "branch", "spam", *argv, "--sparsities=50") / "spam" / "model_ep3_it0.pt")
    decayed = [f for f in TINY if not f.startswith("--weight_decay")] + [f"--weight_decay={1 / 256}"]
    assert cli("train", *decayed, root_dir=tmp_path / "decayed")[0] == 0
    trunk_final = load(next((tmp_path / "decayed").rglob("model_ep3_it0.pt")))
    for name in trunk_final:
        torch.testing.assert_close(spam_final[name], trunk_final[name], rtol=1e-5, atol=1e-6)


def test_a_killed_spam_training_resumes_bitwise(cli, tmp_path, monkeypatch):
    argv = [*TINY, "--prior=layer", "--marglik_frequency=1", "--hyper_steps=10", "--sparsities=50",
            "--criteria=opd"]
    assert cli("branch", "spam", *argv)[0] == 0
    whole = location(cli, "branch", "spam", *argv) / "spam"
    real_train = spam_training.train

    def killed(*args, **kwargs):
        return real_train(*args, **{**kwargs, "hooks": [*kwargs["hooks"], Kill(6)]})

    monkeypatch.setattr(spam_training, "train", killed)
    root = tmp_path / "killed"
    assert cli("branch", "spam", *argv, root_dir=root)[0] == 130
    resumed = next(root.rglob("branch_spam_*")) / "spam"
    assert (resumed / "checkpoint.pt").exists() and not (resumed / "done.json").exists()
    monkeypatch.setattr(spam_training, "train", real_train)
    assert cli("branch", "spam", *argv, root_dir=root)[0] == 0
    for name in ("model_ep3_it0.pt", "prior_precision.pt", "posterior_precision.pt"):
        a, b = load(whole / name), load(resumed / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (whole / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()
    # a damaged posterior file makes SpaM train again, to the same result
    (resumed / "posterior_precision.pt").write_bytes(b"truncated")
    code, _, err = cli("branch", "spam", *argv, root_dir=root)
    assert code == 0 and "training SpaM again" in err
    a, b = load(whole / "posterior_precision.pt"), load(resumed / "posterior_precision.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
