"""Oneshot scores on a GPT: the scoring windows of a corpus, SNIP and GraSP against hand
computations, SynFlow's one-line refusal, and every strategy through the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import datasets.registry
import open_prune
from datasets.text_loader import TextLoader
from foundations.errors import UserError
from models import gpt
from pruning import ScoringData, scores
from pruning.mask import Mask

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog.\n%\n" for i in range(300))
TINY = ["--default_hparams=fortunes_gpt_1_16_h2_c16", "--batch_size=8", "--training_steps=6it",
        "--warmup_steps=2it", "--context_length=16", "--num_threads=1", "--quiet"]


def corpus_loader(batch_size=4, context=16):
    tokens = torch.tensor(list(TEXT.encode()), dtype=torch.uint8)
    return TextLoader(tokens, context=context, batch_size=batch_size, vocabulary=256, train=True,
                      transformation_seed=0)


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return gpt.GPT(256, layers=1, width=16, heads=2, context=16, tied=False).double()


def test_scoring_windows_are_n_predictions_per_vocabulary_entry_from_the_seed():
    loader = corpus_loader()
    x, y = loader.examples_per_class(3, seed=5)
    assert x.shape == y.shape == (3 * 256 // 16, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token
    text = loader.tokens.long()
    for window, targets in zip(x, y):  # every window is a real window of the split, targets its next tokens
        start = next(s for s in range(text.numel() - 16) if torch.equal(text[s:s + 16], window)
                     and torch.equal(text[s + 1:s + 17], targets))
        assert start >= 0
    again, _ = loader.examples_per_class(3, seed=5)
    other, _ = loader.examples_per_class(3, seed=6)
    assert torch.equal(x, again) and not torch.equal(x, other)
    assert loader.examples_per_class(1, seed=0)[0].shape[0] == 16  # ceil(256 / 16)
    assert corpus_loader(context=48).examples_per_class(1, seed=0)[0].shape[0] == 6  # ceil(256 / 48)


def full_mask(model):
    names = set(model.prunable_layer_names)
    return Mask({name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters() if name in names})


def token_loss(model, x, y, temperature=1.0):
    return F.cross_entropy((model(x) / temperature).flatten(0, 1), y.flatten())


def test_snip_is_the_token_mean_cross_entropy_sensitivity():
    model, loader = tiny_gpt(), corpus_loader()
    mask = full_mask(model)
    found = scores.get("snip2")(model, mask, ScoringData(examples=loader, seed=1))
    x, y = loader.examples_per_class(2, seed=1)
    weights = [dict(model.named_parameters())[name] for name in mask]
    gradients = torch.autograd.grad(token_loss(model, x, y), weights)
    for name, w, g in zip(mask, weights, gradients):
        assert torch.allclose(found[name], (w.detach() * g).abs(), rtol=1e-9, atol=1e-14)


def test_snip_in_batches_weights_each_batch_by_its_windows():
    model, loader = tiny_gpt(), corpus_loader()
    mask = full_mask(model)
    found = scores.get("snip1")(model, mask, ScoringData(examples=loader, seed=1, batch_size=5))
    x, y = loader.examples_per_class(1, seed=1)  # 16 windows: batches of 5, 5, 5, 1 after the seeded shuffle
    order = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    x, y = x[order], y[order]
    weights = [dict(model.named_parameters())[name] for name in mask]
    expected = [torch.zeros_like(w) for w in weights]
    for start in range(0, 16, 5):
        gradients = torch.autograd.grad(token_loss(model, x[start:start + 5], y[start:start + 5]), weights)
        for total, w, g in zip(expected, weights, gradients):
            total.add_((w.detach() * g).abs(), alpha=x[start:start + 5].shape[0] / 16)
    for name, total in zip(mask, expected):
        assert torch.allclose(found[name], total, rtol=1e-9, atol=1e-14)


def test_grasp_hessian_gradient_product_matches_finite_differences():
    """-w * (H g) with H g from central differences of the gradient (no double backward at all)."""
    model, loader = tiny_gpt(), corpus_loader()
    mask = full_mask(model)
    found = scores.get("grasp1")(model, mask, ScoringData(examples=loader, seed=2))
    x, y = loader.examples_per_class(1, seed=2)
    parameters = dict(model.named_parameters())
    weights = [parameters[name] for name in mask]

    def gradient():
        return torch.autograd.grad(token_loss(model, x, y, temperature=200.0), weights)

    g = [t.detach().clone() for t in gradient()]
    eps = 1e-4
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(d, alpha=eps)
    plus = gradient()
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(d, alpha=-2 * eps)
    minus = gradient()
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(d, alpha=eps)
    for name, w, p, m in zip(mask, weights, plus, minus):
        hg = (p - m) / (2 * eps)
        expected = -w.detach() * hg
        assert torch.allclose(found[name], expected, rtol=1e-4, atol=1e-6 * expected.abs().max().item())


def test_synflow_refuses_a_token_model_in_one_line():
    model = tiny_gpt()
    with pytest.raises(UserError, match="synflow feeds an all-ones input") as error:
        scores.get("synflow")(model, full_mask(model), ScoringData(input_shape=(16,)))
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "fortunes").mkdir()
    (root / "fortunes" / "a").write_text(TEXT)
    return root


@pytest.mark.parametrize("strategy", ["magnitude", "random", "snip2", "grasp2", "graspabs2"])
def test_every_data_strategy_prunes_a_gpt_through_the_cli(strategy, corpus_root, tmp_path):
    datasets.registry.clear_cache()
    argv = ["branch", "oneshot", *TINY, f"--strategy={strategy}", "--prune_fraction=0.6",
            f"--root={tmp_path}", f"--dataset_root={corpus_root}", "--device=cpu"]
    assert open_prune.main(argv) == 0
    branch = next(tmp_path.glob("train_*/replicate_1/branch_oneshot_*"))
    mask = torch.load(branch / "mask.pt")
    kept = sum(int(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    assert abs(kept / total - 0.4) < 1e-3
    assert set(mask) == set(gpt.GPT(256, 1, 16, 2, 16, False).prunable_layer_names)
    final = torch.load(branch / "model_ep0_it6.pt")
    for name, alive in mask.items():  # pruned weights stay zero through training
        assert not final[name][~alive.bool()].any()
    assert json.loads((branch / "done.json").read_text())["metrics"]["test_perplexity"] > 1


def test_synflow_through_the_cli_is_one_error_line(corpus_root, tmp_path, capsys):
    datasets.registry.clear_cache()
    argv = ["branch", "oneshot", *TINY, "--strategy=synflow", "--prune_fraction=0.5",
            f"--root={tmp_path}", f"--dataset_root={corpus_root}", "--device=cpu"]
    assert open_prune.main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "synflow feeds an all-ones input" in err
