"""SpaM on a language model: the GPT's (windows, positions, vocabulary) logits as a classification
likelihood per token, the window as the Laplace's example, and the branch end to end on a tiny corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import open_prune
from bayes import fit_curvature
from branches.spam.calibration import evaluate_calibration
from branches.spam.prior_training import likelihood_of, training_size
from foundations.bundles import TrainingHparams
from foundations.errors import UserError
from models.gpt import GPT
from pruning.mask import Mask

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog.\n%\n" for i in range(60))
TINY = ["--default_hparams=fortunes_gpt_1_16_h2_c16", "--batch_size=8", "--training_steps=1ep",
        "--warmup_steps=2it", "--context_length=16", "--quiet", "--prior=parameter", "--curvature=diag_ef",
        "--marglik_frequency=1", "--hyper_steps=5", "--criteria=opd,magnitude", "--sparsities=50,90"]


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(7, 1, 8, 2, 5, False).double()


def test_the_diagonal_ef_sums_each_windows_squared_gradient_by_hand():
    """Oracle: one backward per window of its summed token cross-entropy, squared and summed."""
    model = tiny_gpt()
    x, y = torch.randint(0, 7, (3, 5)), torch.randint(0, 7, (3, 5))
    curvature = fit_curvature(model, [(x[:2], y[:2]), (x[2:], y[2:])], "classification", "diag_ef")
    model.eval()
    by_hand = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    loss = 0.0
    for n in range(3):
        model.zero_grad()
        window_loss = F.cross_entropy(model(x[n:n + 1])[0], y[n], reduction="sum")
        window_loss.backward()
        loss += window_loss.item()
        for name, p in model.named_parameters():
            by_hand[name] += p.grad.square()
    assert set(curvature.diagonal) == set(by_hand)
    for name, expected in by_hand.items():
        torch.testing.assert_close(curvature.diagonal[name], expected, rtol=1e-9, atol=1e-12)
    assert curvature.loss.item() == pytest.approx(loss, rel=1e-12)
    assert (curvature.n_data, curvature.n_outputs) == (3, 7)


def test_a_posterior_over_the_prunable_layers_holds_the_rest_fixed():
    """Restricting the Laplace changes nothing in the covered entries: the same per-window squares."""
    model = tiny_gpt()
    x, y = torch.randint(0, 7, (3, 5)), torch.randint(0, 7, (3, 5))
    whole = fit_curvature(model, [(x, y)], "classification", "diag_ef")
    names = tuple(model.prunable_layer_names)
    assert set(names) == {"blocks.0.qkv.weight", "blocks.0.proj.weight", "blocks.0.fc1.weight",
                          "blocks.0.fc2.weight", "fc.weight"}
    part = fit_curvature(model, [(x, y)], "classification", "diag_ef", posterior=names)
    assert set(part.diagonal) == set(part.theta) == set(names) and part.prunable == names
    for name in names:
        torch.testing.assert_close(part.diagonal[name], whole.diagonal[name], rtol=1e-9, atol=1e-12)
    assert part.loss.item() == pytest.approx(whole.loss.item(), rel=1e-12)
    with pytest.raises(UserError, match="not trainable parameters"):
        fit_curvature(model, [(x, y)], "classification", "diag_ef", posterior=["nope.weight"])


def test_the_ggn_of_per_position_outputs_is_refused_with_one_line():
    model = tiny_gpt()
    x = torch.randint(0, 7, (2, 5))
    for structure in ("diag_ggn", "kfac"):
        with pytest.raises(UserError, match="diag_ef"):
            fit_curvature(model, [(x, x)], "classification", structure)


def test_language_modelling_is_classification_and_n_counts_tokens():
    training = TrainingHparams(optimizer_name="adam", lr=0.1, training_steps="1ep")
    assert likelihood_of(training, "language_modeling") == "classification"

    class Windows:
        task, num_examples, context = "language_modeling", 12, 16

    assert training_size(Windows()) == 12 * 16


def test_calibration_counts_tokens_and_reports_perplexity():
    model = tiny_gpt().float()
    x, y = torch.randint(0, 7, (4, 5)), torch.randint(0, 7, (4, 5))

    class Loader:
        task = "language_modeling"

        def batches(self, epoch):
            return iter([(x[:3], y[:3]), (x[3:], y[3:])])

    metrics = evaluate_calibration(model, Loader())
    with torch.no_grad():
        logits = model(x)
    nll = F.cross_entropy(logits.reshape(-1, 7), y.reshape(-1)).item()
    assert metrics["nll"] == pytest.approx(nll, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx((logits.argmax(-1) == y).double().mean().item())


def run_branch(root: Path, capsys, *argv: str) -> Path:
    """Run a branch on the tiny corpus through the CLI; its directory."""
    (root / "fortunes").mkdir(exist_ok=True)
    (root / "fortunes" / "a").write_text(TEXT)
    argv = [*argv, f"--root={root / 'runs'}", f"--dataset_root={root}", "--device=cpu"]
    assert open_prune.main(argv) == 0
    capsys.readouterr()
    assert open_prune.main([*argv, "--display_output_location"]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def test_spam_branch_on_a_tiny_gpt_end_to_end(tmp_path, capsys):
    branch_dir = run_branch(tmp_path, capsys, "branch", "spam", *TINY)
    marker = json.loads((branch_dir / "branch_done.json").read_text())
    text = json.dumps(marker)
    assert "perplexity" in text
    cells = [json.loads(p.read_text()) for p in (branch_dir / "cells").rglob("*.json")]
    pruned = [c for c in cells if c.get("criterion") is not None]
    assert {c["sparsity"] for c in pruned} == {50, 90}
    assert all(c["perplexity"] > 1 and math.isfinite(c["perplexity"]) for c in cells)
    prior = torch.load(branch_dir / "spam" / "prior_precision.pt", weights_only=True)
    posterior = torch.load(branch_dir / "spam" / "posterior_precision.pt", weights_only=True)
    prunable = {"blocks.0.qkv.weight", "blocks.0.proj.weight", "blocks.0.fc1.weight", "blocks.0.fc2.weight",
                "fc.weight"}
    assert set(prior) == set(posterior) == prunable  # no embeddings, norms or biases
    assert prior["blocks.0.fc1.weight"].shape == (64, 16) and prior["blocks.0.fc1.weight"].unique().numel() > 1
    # pruning 90% of the posterior's weights costs perplexity
    spam90 = next(c for c in pruned if c["model"] == "spam" and c["criterion"] == "opd" and c["sparsity"] == 90)
    dense = next(c for c in cells if c["model"] == "spam" and c["criterion"] is None)
    assert spam90["perplexity"] > dense["perplexity"]


def test_spam_online_on_a_tiny_gpt_keeps_pruned_weights_zero(tmp_path, capsys):
    online = ["--default_hparams=fortunes_gpt_1_16_h2_c16", "--batch_size=8", "--training_steps=2ep",
              "--warmup_steps=2it", "--context_length=16", "--quiet", "--prior=parameter", "--marglik_frequency=1",
              "--hyper_steps=5", "--initial_sparsity=0.5", "--final_sparsity=0.5", "--prune_interval=1",
              "--dynamic_mask=false"]
    branch_dir = run_branch(tmp_path, capsys, "branch", "spam-online", *online, "--curvature=diag_ef")
    mask = Mask.load(branch_dir)
    final = max(branch_dir.glob("model_ep*.pt"), key=lambda p: p.stat().st_mtime)
    weights = torch.load(final, weights_only=True)
    pruned = {name: ~kept for name, kept in mask.items()}
    assert sum(int(p.sum()) for p in pruned.values()) > 0
    assert all(torch.all(weights[name][p] == 0) for name, p in pruned.items())
    assert "perplexity" in (branch_dir / "branch_done.json").read_text()


def test_the_ggn_for_a_language_model_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "a").write_text(TEXT)
    argv = ["branch", "spam", *TINY, "--curvature=diag_ggn", f"--root={tmp_path / 'runs'}",
            f"--dataset_root={tmp_path}", "--device=cpu"]
    assert open_prune.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--curvature=diag_ef" in err, err
    assert not list((tmp_path / "runs").rglob("model_*.pt"))
