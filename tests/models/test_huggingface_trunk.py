"""Pretrained Hugging Face trunks: tiny GPT-2, DistilBERT and ViT checkpoints written by transformers'
save_pretrained, loaded back as trunks. Oracles: transformers' own logits on the same input, the
Conv1D weight transposed, the digest's invariances, and the CLI end to end (pruned weights zero)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import models.registry as models_registry
import open_prune
from foundations.bundles import DatasetHparams, ModelHparams, TrainingHparams
from foundations.desc import TrainDesc
from foundations.digests import checkpoint_digest
from foundations.errors import UserError
from models import huggingface_checkpoint

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog.\n%\n" for i in range(300))


@pytest.fixture
def transformers():
    return pytest.importorskip("transformers")


def save(model: nn.Module, directory: Path) -> Path:
    model.save_pretrained(directory)
    return directory


def gpt2_dir(transformers, directory: Path, tied: bool = True, context: int = 32) -> Path:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=256, n_positions=context, n_embd=16, n_layer=2, n_head=2,
                                     tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0)
    return save(transformers.GPT2LMHeadModel(config), directory)


def distilbert_dir(transformers, directory: Path) -> Path:
    torch.manual_seed(1)
    config = transformers.DistilBertConfig(vocab_size=100, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                                           max_position_embeddings=32, num_labels=3)
    return save(transformers.DistilBertForSequenceClassification(config), directory)


def vit_dir(transformers, directory: Path) -> Path:
    torch.manual_seed(2)
    config = transformers.ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=16, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=32, num_labels=10)
    return save(transformers.ViTForImageClassification(config), directory)


def trunk(directory: Path, input_shape: tuple, num_classes: int, name: str = "hf") -> nn.Module:
    hparams = ModelHparams(name, model_init="pytorch", pretrained=str(directory))
    return models_registry.get(hparams, input_shape, num_classes, seed=0).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_gpt2_gives_the_logits_of_transformers_and_its_conv1d_layers_are_prunable_linears(transformers, tmp_path,
                                                                                             tied):
    directory = gpt2_dir(transformers, tmp_path / "gpt2", tied)
    model = trunk(directory, (16,), 256, "fortunes_hf")
    reference = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    tokens = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(tokens), reference(tokens).logits
    assert ours.shape == (3, 16, 256)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    attention = model.transformer.h[0].attn
    assert isinstance(attention.c_attn, nn.Linear) and attention.c_attn.weight.shape == (48, 16)
    assert torch.equal(attention.c_attn.weight, reference.transformer.h[0].attn.c_attn.weight.t())
    projections = {f"transformer.h.{i}.{layer}.weight" for i in range(2)
                   for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    assert set(model.prunable_layer_names) == projections | (set() if tied else {"lm_head.weight"})
    assert model.output_layer_names == (["transformer.wte.weight"] if tied else ["lm_head.weight"])


def test_distilbert_gives_the_logits_of_transformers(transformers, tmp_path):
    directory = distilbert_dir(transformers, tmp_path / "distilbert")
    model = trunk(directory, (12,), 3)
    reference = transformers.DistilBertForSequenceClassification.from_pretrained(directory).eval()
    tokens = torch.randint(0, 100, (4, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens).logits, rtol=1e-5, atol=1e-5)
    names = set(model.prunable_layer_names)
    assert "distilbert.transformer.layer.0.attention.q_lin.weight" in names
    assert "distilbert.transformer.layer.1.ffn.lin2.weight" in names and "classifier.weight" in names
    assert not any("embeddings" in name or "layer_norm" in name for name in names)
    with pytest.raises(UserError, match="bidirectional"):
        trunk(directory, (12,), 100, "fortunes_hf")


def test_vit_gives_the_logits_of_transformers_and_a_new_head_for_other_classes(transformers, tmp_path):
    directory = vit_dir(transformers, tmp_path / "vit")
    reference = transformers.ViTForImageClassification.from_pretrained(directory).eval()
    images = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(trunk(directory, (1, 28, 28), 10)(images), reference(images).logits,
                                   rtol=1e-5, atol=1e-5)
        small = images[:, :, :14, :14]  # other image sizes: interpolated positions, as transformers does
        torch.testing.assert_close(trunk(directory, (1, 14, 14), 10)(small),
                                   reference(small, interpolate_pos_encoding=True).logits, rtol=1e-5, atol=1e-5)
    transferred = trunk(directory, (1, 28, 28), 4)
    assert transferred(images).shape == (2, 4)
    theirs = reference.state_dict()
    body = {name: tensor for name, tensor in transferred.state_dict().items() if not name.startswith("classifier")}
    assert body and all(torch.equal(tensor, theirs[name]) for name, tensor in body.items())
    names = transferred.prunable_layer_names  # the projections (module names differ across transformers versions)
    assert "classifier.weight" in names and "vit.embeddings.patch_embeddings.projection.weight" in names
    assert len(names) == 2 + 2 * 6 and not any("norm" in name or "position" in name for name in names)
    again = trunk(directory, (1, 28, 28), 4)  # the new head is drawn from the seed
    assert torch.equal(again.classifier.weight, transferred.classifier.weight)
    with pytest.raises(UserError, match="square images of 1 channel"):
        trunk(directory, (3, 28, 28), 10)


def run_hash(directory: Path) -> str:
    model = ModelHparams("fortunes_hf", model_init="pytorch", pretrained=str(directory))
    return TrainDesc(DatasetHparams("fortunes", 4), model, TrainingHparams("adamw", 1e-4, "4it")).hash


def test_the_hash_is_the_checkpoints_digest_not_its_path(transformers, tmp_path):
    directory = gpt2_dir(transformers, tmp_path / "a")
    before = run_hash(directory)
    moved = Path(shutil.move(str(directory), str(tmp_path / "elsewhere")))
    assert run_hash(moved) == before
    assert ModelHparams("fortunes_hf", model_init="pytorch", pretrained=str(moved)).to_dict(hashed_only=True)[
        "pretrained_digest"] == checkpoint_digest(str(moved))
    model = transformers.GPT2LMHeadModel.from_pretrained(moved)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[0, 0] += 1.0
    model.save_pretrained(moved)
    assert run_hash(moved) != before
    with pytest.raises(UserError, match="its files changed"):
        ModelHparams("fortunes_hf", model_init="pytorch", pretrained=str(moved), pretrained_digest="0" * 64)


def test_bad_directories_and_flags_are_one_line_errors(transformers, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cases = [(tmp_path / "absent", "not a directory"), (tmp_path / "plain", "not a Hugging Face checkpoint")]
    for directory, message in cases:
        with pytest.raises(UserError, match=message) as error:
            ModelHparams("hf", model_init="pytorch", pretrained=str(directory))
        assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="'bert' model; pretrained trunks read gpt2, distilbert, vit"):
        trunk(tmp_path / "bert", (16,), 256)
    directory = gpt2_dir(transformers, tmp_path / "gpt2")
    with pytest.raises(UserError, match="--model_init=pytorch"):
        ModelHparams("fortunes_hf", pretrained=str(directory))
    with pytest.raises(UserError, match="drop --pretrained"):
        trunk(directory, (16,), 256, "fortunes_gpt_1_16")
    with pytest.raises(UserError, match="vocabulary of 256 tokens but the corpus has 300"):
        trunk(directory, (16,), 300, "fortunes_hf")
    with pytest.raises(UserError, match="give --pretrained"):
        models_registry.get(ModelHparams("fortunes_hf", model_init="pytorch"), (16,), 256, seed=0)


def test_without_transformers_the_feature_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # what an absent package imports as
    with pytest.raises(UserError, match=r"pip install -e \.\[hf\]"):
        huggingface_checkpoint.transformers_module()


@pytest.fixture
def corpus_root(tmp_path):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "a").write_text(TEXT)
    return tmp_path


def run_cli(root: Path, *argv: str) -> int:
    return open_prune.main([*argv, f"--root={root / 'runs'}", f"--dataset_root={root}", "--device=cpu"])


def test_train_and_oneshot_magnitude_from_a_pretrained_gpt2_keep_pruned_conv1d_weights_zero(transformers,
                                                                                            corpus_root, capsys):
    directory = gpt2_dir(transformers, corpus_root / "gpt2", context=16)
    flags = ["--default_hparams=fortunes_hf", f"--pretrained={directory}", "--batch_size=4", "--training_steps=6it",
             "--warmup_steps=2it", "--context_length=16", "--num_threads=1", "--quiet"]
    assert run_cli(corpus_root, "train", *flags) == 0
    trunk_dir = next((corpus_root / "runs").rglob("model_ep0_it0.pt")).parent
    start = torch.load(trunk_dir / "model_ep0_it0.pt", weights_only=True)
    reference = transformers.GPT2LMHeadModel.from_pretrained(directory)
    assert torch.equal(start["transformer.h.1.mlp.c_fc.weight"], reference.transformer.h[1].mlp.c_fc.weight.t())
    assert run_cli(corpus_root, "branch", "oneshot", *flags, "--strategy=magnitude", "--prune_fraction=0.5") == 0
    mask_path = next((corpus_root / "runs").rglob("mask.pt"))
    mask = torch.load(mask_path, weights_only=True)
    assert "transformer.h.0.attn.c_attn.weight" in mask and "transformer.h.1.mlp.c_proj.weight" in mask
    assert not any("wte" in name or "wpe" in name or "ln_" in name or "lm_head" in name for name in mask)
    final = torch.load(sorted(mask_path.parent.glob("model_ep*_it6.pt"))[-1], weights_only=True)
    for name, kept in mask.items():
        assert (final[name][~kept] == 0).all(), name
        assert (final[name][kept] != 0).any(), name
    report = json.loads((mask_path.parent / "sparsity.json").read_text())
    assert report["unpruned"] == round(0.5 * report["total"])
    # FLOPs by hand, 16 tokens of width 16: per block 2*16*16*(48 + 16 + 64 + 64) in the projections and
    # 2 * 2*16*16*16 in attention's two products; the tied head 2*16*16*256. Pruned: half the projections.
    projections, attention, head = 2 * 2 * 16 * 16 * 192, 2 * 2 * 2 * 16 ** 3, 2 * 16 * 16 * 256
    compute = json.loads((mask_path.parent / "done.json").read_text())["compute"]
    assert compute["forward_flops_dense"] == projections + attention + head
    assert compute["forward_flops"] == projections / 2 + attention + head
    capsys.readouterr()
    assert run_cli(corpus_root, "train", *flags[:1], f"--pretrained={corpus_root / 'absent'}", *flags[2:]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err, err


def test_a_corpus_tokenized_by_a_checkpoints_tokenizer_is_cached_by_the_tokenizers_digest(transformers, corpus_root,
                                                                                         monkeypatch):
    from tokenizers import ByteLevelBPETokenizer

    from datasets import tokenized_text
    from datasets.catalog import fortunes

    def tokenizer_dir(directory: Path, size: int) -> Path:
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator([TEXT], vocab_size=size, min_frequency=2, show_progress=False)
        transformers.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer).save_pretrained(directory)
        return directory

    small = tokenizer_dir(corpus_root / "tok_small", 280)
    tokens, vocabulary = tokenized_text.tokenized_split(fortunes.SPEC.files, corpus_root, "test", small)
    first, end = fortunes.SPEC.files.split_bounds(len(TEXT.encode()))["test"]
    reference = transformers.AutoTokenizer.from_pretrained(small)
    assert tokens.tolist() == reference(TEXT.encode()[first:end].decode())["input_ids"]
    assert vocabulary == len(reference) and tokens.numel() < end - first  # merges: fewer tokens than bytes
    monkeypatch.setattr(tokenized_text, "_tokenizer", lambda directory: pytest.fail("not read from the cache"))
    again, _ = tokenized_text.tokenized_split(fortunes.SPEC.files, corpus_root, "test", small)
    assert torch.equal(again, tokens)
    monkeypatch.undo()
    larger = tokenizer_dir(corpus_root / "tok_large", 300)
    assert tokenized_text.tokenizer_digest(larger) != tokenized_text.tokenizer_digest(small)
    other, other_vocabulary = tokenized_text.tokenized_split(fortunes.SPEC.files, corpus_root, "test", larger)
    assert other_vocabulary == len(transformers.AutoTokenizer.from_pretrained(larger)) != vocabulary
    with pytest.raises(UserError, match="holds no tokenizer"):
        tokenized_text.tokenizer_digest(corpus_root / "fortunes")


def test_a_pruned_trunk_saves_back_as_a_transformers_checkpoint(transformers, tmp_path):
    directory = gpt2_dir(transformers, tmp_path / "gpt2")
    model = trunk(directory, (16,), 256, "fortunes_hf")
    with torch.no_grad():
        model.transformer.h[0].attn.c_attn.weight[:, :8] = 0  # a pruned block of inputs
    huggingface_checkpoint.save_pretrained(model, tmp_path / "out")
    reference = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    assert (reference.transformer.h[0].attn.c_attn.weight[:8] == 0).all()  # Conv1D's (in, out) layout again
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens).logits, rtol=1e-5, atol=1e-5)
    vit = trunk(vit_dir(transformers, tmp_path / "vit"), (1, 28, 28), 4)  # a new head: 4 labels
    huggingface_checkpoint.save_pretrained(vit, tmp_path / "vit_out")
    assert transformers.ViTForImageClassification.from_pretrained(tmp_path / "vit_out").config.num_labels == 4


def bpe_tokenizer_dir(transformers, directory: Path, size: int = 280) -> Path:
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=size, min_frequency=2, show_progress=False)
    transformers.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer).save_pretrained(directory)
    return directory


def test_a_gpt2_trunk_reads_the_corpus_through_its_own_tokenizer(transformers, corpus_root, capsys):
    """--tokenizer: the loader serves the tokenizer's ids, the model's output is its vocabulary, and
    the tokenizer's digest (not its path) is in the hash."""
    tokenizer = bpe_tokenizer_dir(transformers, corpus_root / "gpt2_tok")
    vocabulary = len(transformers.AutoTokenizer.from_pretrained(tokenizer))
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocabulary, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    directory = save(transformers.GPT2LMHeadModel(config), corpus_root / "gpt2")
    flags = ["--default_hparams=fortunes_hf", f"--pretrained={directory}", f"--tokenizer={tokenizer}",
             "--batch_size=4", "--training_steps=4it", "--warmup_steps=1it", "--context_length=16",
             "--num_threads=1", "--quiet"]
    assert run_cli(corpus_root, "train", *flags) == 0, capsys.readouterr().err
    stored = json.loads(next((corpus_root / "runs").rglob("hparams.json")).read_text())["hparams"]["dataset"]
    from foundations.digests import tokenizer_digest
    assert stored["tokenizer_digest"] == tokenizer_digest(str(tokenizer)) and "tokenizer" not in stored
    done = json.loads(next((corpus_root / "runs").rglob("done.json")).read_text())
    assert done["metrics"]["test_loss"] < 2 * math.log(vocabulary)  # a loss over the tokenizer's ids
    import api
    run = api.open_run(next((corpus_root / "runs").rglob("done.json")).parent)
    with pytest.raises(UserError, match=r"model\(pretrained=<dir>\)"):
        run.model()
    with pytest.raises(UserError, match=r"model\(tokenizer=<dir>\)"):
        run.model(pretrained=str(directory))
    rebuilt = run.model(pretrained=str(directory), tokenizer=str(tokenizer))
    assert rebuilt(torch.zeros(1, 16, dtype=torch.long)).shape == (1, 16, vocabulary)
    capsys.readouterr()
    # byte-level tokens (256) do not fit this checkpoint's vocabulary: one line
    assert run_cli(corpus_root, "train", *[f for f in flags if not f.startswith("--tokenizer")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vocabulary" in err, err
    # a reinitialization of a pretrained trunk would be the checkpoint again: refused in one line
    assert run_cli(corpus_root, "branch", "oneshot", *flags, "--strategy=magnitude", "--prune_fraction=0.5",
                   "--reinitialize") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a reinitialization" in err, err
