"""A text corpus tokenized by a pretrained checkpoint's own tokenizer (a save_pretrained directory).

The split stays the byte split of datasets/text_format.py (the same text trains, validates and
tests as at byte level); each split's text is decoded as UTF-8 and tokenized on its own. The token
tensor is cached under `<root>/<corpus directory>/.tokens/`, keyed by the tokenizer's digest (a
sha256 of its files) and the corpus bytes' digest, so a changed tokenizer or corpus is tokenized
again and an unchanged one is read back. `transformers` is the optional extra `hf`.

`--tokenizer=<dir>` (DatasetHparams) turns it on: the loader (datasets/registry.py) reads the
tokens from `tokenized_split` and the model's output width is the tokenizer's vocabulary.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch

from datasets.text_format import TextCorpus
from foundations.digests import tokenizer_digest
from foundations.errors import UserError


def _tokenizer(directory: str | Path):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UserError("tokenizing a corpus with a checkpoint's tokenizer needs Hugging Face transformers, which "
                        "is not installed: pip install -e .[hf]") from None
    return AutoTokenizer.from_pretrained(str(Path(directory).expanduser()))


@functools.lru_cache(maxsize=None)
def vocabulary_size(tokenizer_dir: str) -> int:
    """How many tokens the tokenizer in this directory can emit (its vocabulary and added tokens)."""
    return len(_tokenizer(tokenizer_dir))


def tokenized_split(corpus: TextCorpus, root: Path, split: str, tokenizer_dir: str | Path
                    ) -> tuple[torch.Tensor, int]:
    """(the split's token ids as an int64 tensor, the tokenizer's vocabulary size), from the cache
    when this tokenizer has tokenized this corpus before."""
    data = corpus.read_tokens(root)
    first, end = corpus.split_bounds(data.numel())[split]
    text_digest = hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]
    cache = Path(root) / corpus.directory / ".tokens" / f"{tokenizer_digest(tokenizer_dir)[:16]}-{text_digest}"
    path = cache / f"{split}.pt"
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        return stored["tokens"], int(stored["vocabulary"])
    tokenizer = _tokenizer(tokenizer_dir)
    text = data[first:end].numpy().tobytes().decode("utf-8", errors="replace")
    tokens = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.int64)
    vocabulary = len(tokenizer)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        torch.save({"tokens": tokens, "vocabulary": vocabulary}, partial)
        partial.replace(path)
    except OSError:
        pass  # a read-only corpus directory: tokenized again next time
    return tokens, vocabulary
