"""The identity of a directory of files, wherever it lies: a sha256 over their names, sizes and bytes.

What a run hashes when it reads a checkpoint or a tokenizer from a directory the user names: the
path is left out of the hash (moving the directory keeps the run), the content is in (changing a
weight or a merge makes another run). Digests are cached by (path, name, size, mtime), so a
directory is read once per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from foundations.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "vocab.txt",
                   "special_tokens_map.json", "added_tokens.json", "spiece.model")

_DIGESTS: dict[tuple, str] = {}


def files_digest(files: Sequence[Path]) -> str:
    """sha256 of the files' names, sizes and bytes, in the order given."""
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        for p in files:
            digest.update(f"{p.name}\0{p.stat().st_size}\0".encode())
            with p.open("rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def checkpoint_digest(directory: str) -> str:
    """The digest of a save_pretrained directory's top-level files (hidden files and *.md left out)."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise UserError(f"--pretrained={directory} is not a directory: give one written by save_pretrained")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".md")
    if "config.json" not in {p.name for p in files}:
        raise UserError(f"--pretrained={directory} has no config.json, so it is not a Hugging Face checkpoint: "
                        "give a directory written by save_pretrained")
    return files_digest(files)


def tokenizer_digest(directory: str) -> str:
    """The digest of the tokenizer files a directory holds (those of TOKENIZER_FILES present)."""
    path = Path(directory).expanduser()
    files = sorted(path / name for name in TOKENIZER_FILES if (path / name).is_file())
    if not files:
        raise UserError(f"--tokenizer={directory} holds no tokenizer ({', '.join(TOKENIZER_FILES[:4])}, ...): "
                        "give a directory the tokenizer's save_pretrained wrote, e.g. a GPT-2 checkpoint's")
    return files_digest(files)
