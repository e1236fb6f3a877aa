"""The language-modelling task: the corpus split, the window sampler, the GPT, the metrics, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

import datasets.registry
import open_prune
from datasets.catalog import fortunes
from datasets.text_loader import TextLoader
from foundations.bundles import DatasetHparams
from foundations.errors import UserError
from models import gpt
from training import loop
from training.hooks import Hook
from training.losses import Loss, evaluate

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog.\n%\n" for i in range(400))
TINY = ["--default_hparams=fortunes_gpt_1_16_h2_c16", "--batch_size=8", "--training_steps=12it",
        "--warmup_steps=2it", "--context_length=16", "--quiet"]


@pytest.fixture
def corpus_root(tmp_path):
    """A tiny corpus where the catalog looks first (<root>/fortunes/), so the tests never read Debian's."""
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "a").write_text(TEXT[:9000])
    (tmp_path / "fortunes" / "b").write_text(TEXT[9000:])
    (tmp_path / "fortunes" / "b.dat").write_bytes(b"\x00" * 50)  # fortune's index: skipped
    return tmp_path


def loader(root, split, **overrides):
    h = DatasetHparams(dataset_name="fortunes", batch_size=4, context_length=16, transformation_seed=3, **overrides)
    return datasets.registry.get(h, split, root=root, device="cpu")


def test_the_splits_partition_the_corpus_by_position(corpus_root):
    parts = [loader(corpus_root, split).tokens for split in ("train", "val", "test")]
    assert bytes(torch.cat(parts).tolist()) == TEXT.encode()
    assert [p.numel() for p in parts] == [int(len(TEXT) * 0.9), int(len(TEXT) * 0.05),
                                          len(TEXT) - int(len(TEXT) * 0.9) - int(len(TEXT) * 0.05)]


def test_training_windows_are_a_pure_function_of_seed_and_step_within_the_split(corpus_root):
    train = loader(corpus_root, "train")
    tokens = train.tokens
    first = [b for b in train.batches(1, order_seed=7)]
    again = list(train.batches(1, start=2, order_seed=7))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first[2:], again))
    other = next(iter(train.batches(2, order_seed=7)))
    assert not torch.equal(first[0][0], other[0])
    for x, y in first:
        assert x.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])
        starts = train.starts(1, 0, 7)
        assert int(starts.max()) + 16 < tokens.numel() and int(starts.min()) >= 0
    x, y = first[0]
    starts = train.starts(1, 0, 7)
    assert torch.equal(x, torch.stack([tokens[s:s + 16] for s in starts.tolist()]).long())


def test_evaluation_walks_fixed_non_overlapping_windows(corpus_root):
    test = loader(corpus_root, "test")
    xs = torch.cat([x for x, _ in test.batches(0)])
    assert xs.shape[0] == test.num_examples == (test.tokens.numel() - 1) // 16
    assert torch.equal(xs.flatten(), test.tokens[:xs.numel()].long())


def test_per_example_flags_and_class_scores_refuse_with_one_line(corpus_root):
    with pytest.raises(UserError, match="fixed by position"):
        loader(corpus_root, "train", validation_fraction=0.1)


def tiny_gpt(tied=False):
    torch.manual_seed(0)
    return gpt.build(gpt.parse("gpt_2_16_h2_c16" + ("_tied" if tied else "")), (16,), 256)


@pytest.mark.parametrize("tied", [False, True])
def test_the_logits_at_t_ignore_the_tokens_after_t(tied):
    model = tiny_gpt(tied).eval()
    tokens = torch.randint(0, 256, (3, 12))
    changed = tokens.clone()
    changed[:, 6:] = torch.randint(0, 256, (3, 6))
    a, b = model(tokens), model(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6) and not torch.allclose(a[:, 6:], b[:, 6:])


def test_prunable_layers_are_the_projections_and_not_embeddings_norms_or_a_tied_head():
    untied, tied = tiny_gpt(), tiny_gpt(tied=True)
    per_block = ["qkv.weight", "proj.weight", "fc1.weight", "fc2.weight"]
    expected = [f"blocks.{i}.{name}" for i in range(2) for name in per_block]
    assert tied.prunable_layer_names == expected and untied.prunable_layer_names == expected + ["fc.weight"]
    assert tied.output_layer_names == ["embed.weight"]
    with pytest.raises(UserError, match="synflow"):
        tied(torch.ones(1, 12))


def test_perplexity_and_bits_per_byte_by_hand(corpus_root):
    test = loader(corpus_root, "test")
    model = tiny_gpt()
    metrics = evaluate(model, test, Loss(None, "language_modeling", 256))
    with torch.no_grad():
        x = torch.cat([x for x, _ in test.batches(0)])
        y = torch.cat([y for _, y in test.batches(0)])
        logits = model(x)
    token_loss = F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    assert metrics["test_loss"] == pytest.approx(token_loss, rel=1e-5)
    assert metrics["test_perplexity"] == pytest.approx(math.exp(token_loss), rel=1e-5)
    assert metrics["test_bits_per_byte"] == pytest.approx(token_loss / math.log(2), rel=1e-5)
    accuracy = (logits.argmax(-1) == y).double().mean().item()
    assert metrics["test_accuracy"] == pytest.approx(accuracy, rel=1e-6)


def test_label_smoothing_by_hand():
    logits, labels, eps = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]), 0.3
    log_p = logits.log_softmax(1)[0]
    by_hand = -((1 - eps) * log_p[0] + eps * log_p.mean())
    assert Loss(None, "classification", 3, eps)(logits, labels).item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert Loss(None, "classification", 3)(logits, labels).item() == pytest.approx(-log_p[0].item(), rel=1e-6)
    lm = Loss(None, "language_modeling", 3, eps)(logits[None], labels[None])
    assert lm.item() == pytest.approx(by_hand.item(), rel=1e-6)
    with pytest.raises(UserError, match="label_smoothing"):
        Loss("mse", "classification", 3, eps)


def run_cli(root, *argv):
    return open_prune.main([*argv, f"--root={root / 'runs'}", f"--dataset_root={root}", "--device=cpu"])


class Kill(Hook):
    def after_optimizer_step(self, state):
        if state.iteration == 7:
            raise KeyboardInterrupt


def test_train_oneshot_and_a_killed_run_resumes_bitwise(corpus_root, tmp_path, monkeypatch, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for root in (whole, killed):
        (root / "fortunes").mkdir(parents=True)
        for path in (corpus_root / "fortunes").iterdir():
            (root / "fortunes" / path.name).write_bytes(path.read_bytes())
    assert run_cli(whole, "train", *TINY, "--eval_every=4it") == 0
    real_train = loop.train

    def train_then_kill(*args, **kwargs):
        return real_train(*args, **{**kwargs, "hooks": [*kwargs.get("hooks", ()), Kill()]})

    import runs.trunk
    monkeypatch.setattr(runs.trunk, "train", train_then_kill)
    assert run_cli(killed, "train", *TINY, "--eval_every=4it") == 130
    monkeypatch.setattr(runs.trunk, "train", real_train)
    assert run_cli(killed, "train", *TINY, "--eval_every=4it") == 0
    a_dir, b_dir = (next(root.rglob("main")) for root in (whole, killed))
    final = next(a_dir.glob("model_ep*_it12.pt")).name
    a, b = (torch.load(d / final, weights_only=True) for d in (a_dir, b_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (a_dir / "metrics.jsonl").read_text() == (b_dir / "metrics.jsonl").read_text()
    assert "test_perplexity" in (a_dir / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert run_cli(whole, "branch", "oneshot", *TINY, "--strategy=magnitude", "--prune_fraction=0.5") == 0
    assert run_cli(whole, "branch", "oneshot", *TINY, "--strategy=synflow", "--prune_fraction=0.5") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "synflow" in err, err


def test_the_debian_corpus_is_declared_and_a_missing_one_says_how_to_get_it(tmp_path, monkeypatch):
    assert fortunes.SPEC.task == "language_modeling" and fortunes.SPEC.num_classes == 256
    assert TextLoader.task == "language_modeling"
    monkeypatch.setattr(fortunes, "DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(UserError, match="apt-get install fortunes"):
        loader(tmp_path, "train")


def test_label_smoothing_and_context_length_are_off_by_default_and_checked():
    from foundations.bundles import TrainingHparams

    assert TrainingHparams.label_smoothing == 0.0 and DatasetHparams.context_length is None
    with pytest.raises(UserError, match="label_smoothing"):
        TrainingHparams("adamw", 0.1, "1ep", label_smoothing=1.5).validate()
    with pytest.raises(UserError, match="context_length"):
        DatasetHparams(dataset_name="fortunes", batch_size=4, context_length=0).validate()


@pytest.mark.parametrize("name, flags", [
    ("rigl", ["--train_density=0.5", "--update_every=4it"]),
    ("set", ["--train_density=0.5", "--update_every=4it"]),
    ("gmp", ["--final_density=0.5", "--prune_every=4it"]),
])
def test_the_sparse_training_branches_train_a_gpt_with_exact_masks(corpus_root, name, flags):
    """Their FLOPs are counted on a window of token ids, and pruned projections stay exactly zero."""
    assert run_cli(corpus_root, "branch", name, *TINY, *flags) == 0
    directory = next((corpus_root / "runs").rglob(f"branch_{name}_*"))
    mask = torch.load(directory / "mask.pt", weights_only=True)
    weights = torch.load(next((directory / "training").glob("model_ep*_it12.pt")), weights_only=True)
    assert "blocks.0.qkv.weight" in mask and not any("embed" in k or "norm" in k for k in mask)
    assert all(torch.all(weights[k][~kept] == 0) for k, kept in mask.items())
    results = json.loads((directory / "branch_done.json").read_text())["results"]
    assert 0 < results[0][1]["train FLOPs / dense"] < 1
