"""Unigram and bigram count models of a text corpus, scored on the same test targets as a GPT.

    python benchmarks/text_count_models.py [--dataset_root=DIR] [--context_length=128]

The baselines a language model must beat (docs/language-models.md). Counts come from the training
split; the add-k smoothing of each is chosen on the validation split from a small grid; the test
loss is over exactly the targets the loop's evaluation scores (the next tokens of the fixed
non-overlapping test windows of `--context_length`), so the numbers compare with `test_loss`,
`test_perplexity` and `test_bits_per_byte` of a run.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets.registry as datasets_registry  # noqa: E402

SMOOTHING = (1e-3, 1e-2, 0.1, 0.5, 1.0)


def flag(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default)


def scored(tokens: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(previous tokens, targets) of the evaluation windows: targets tokens[1 : W*context + 1]."""
    end = (tokens.numel() - 1) // context * context
    return tokens[:end].long(), tokens[1:end + 1].long()


def unigram_loss(train: torch.Tensor, targets: torch.Tensor, k: float) -> float:
    counts = torch.bincount(train.long(), minlength=256).double() + k
    return -counts.div(counts.sum()).log()[targets].mean().item()


def bigram_loss(train: torch.Tensor, previous: torch.Tensor, targets: torch.Tensor, k: float) -> float:
    pairs = torch.bincount(train[:-1].long() * 256 + train[1:].long(), minlength=256 * 256).double()
    table = (pairs.view(256, 256) + k)
    log_p = table.div(table.sum(dim=1, keepdim=True)).log()
    return -log_p[previous, targets].mean().item()


def main() -> None:
    root = Path(flag("dataset_root", str(Path.home() / "open_prune_datasets"))).expanduser()
    context = int(flag("context_length", "128"))
    corpus = datasets_registry.spec("fortunes").files
    train, val, test = (corpus.read_split(root, split) for split in ("train", "val", "test"))
    val_prev, val_targets = scored(val, context)
    prev, targets = scored(test, context)
    k1 = min(SMOOTHING, key=lambda k: unigram_loss(train, val_targets, k))
    k2 = min(SMOOTHING, key=lambda k: bigram_loss(train, val_prev, val_targets, k))
    print(f"tokens: train {train.numel()}, val {val.numel()}, test {test.numel()} (scored {targets.numel()})")
    print("model     test_loss  perplexity  bits/byte  add-k")
    for name, loss, k in (("unigram", unigram_loss(train, targets, k1), k1),
                          ("bigram", bigram_loss(train, prev, targets, k2), k2)):
        print(f"{name:8}  {loss:9.4f}  {math.exp(loss):10.2f}  {loss / math.log(2):9.3f}  {k}")


if __name__ == "__main__":
    main()
