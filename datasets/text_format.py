"""A plain-text corpus read as one byte-level token tensor, split by position.

A `TextCorpus` layout says where the text files are: `<root>/<directory>/` first, then a fallback
directory (a Debian package's). Every regular file there is read in name order, files whose names
end in one of `skip_suffixes` (fortune's `.dat` indexes, its `.u8` links) left out, and the bytes
are concatenated. Tokens are the bytes (vocabulary 256).

The split is fixed by position, the same for every run: the first `train_fraction` of the bytes
train, the next `validation_fraction` validate, the rest test. Neighbouring files are whole topics,
so the test split is text the model never saw, not a shuffled sample of seen sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from foundations.errors import UserError

VOCABULARY = 256  # byte-level tokens


@dataclass(frozen=True)
class TextCorpus:
    directory: str
    fallback: Optional[Callable[[], Path]] = None
    how_to_get: str = "copy plain-text files into {directory}"
    skip_suffixes: tuple[str, ...] = (".dat", ".u8")
    train_fraction: float = 0.9
    validation_fraction: float = 0.05

    def search_dirs(self, root: Path) -> list[Path]:
        dirs = [Path(root) / self.directory]
        if self.fallback is not None:
            dirs.append(self.fallback())
        return dirs

    def files(self, root: Path) -> list[Path]:
        """The corpus files of the first directory that has any, in name order."""
        for directory in self.search_dirs(root):
            if directory.is_dir():
                found = sorted(p for p in directory.iterdir()
                               if p.is_file() and not p.is_symlink() and not p.name.endswith(self.skip_suffixes))
                if found:
                    return found
        raise UserError(f"no text files in {' or '.join(str(d) for d in self.search_dirs(root))}: "
                        + self.how_to_get.format(directory=self.search_dirs(root)[0]))

    def read_tokens(self, root: Path) -> torch.Tensor:
        """The whole corpus as one uint8 tensor of bytes."""
        data = b"".join(path.read_bytes() for path in self.files(root))
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def split_bounds(self, length: int) -> dict[str, tuple[int, int]]:
        """{split: (first, end)} positions of train, val and test in a corpus of `length` tokens."""
        a = int(length * self.train_fraction)
        b = a + int(length * self.validation_fraction)
        return {"train": (0, a), "val": (a, b), "test": (b, length)}

    def read_split(self, root: Path, split: str) -> torch.Tensor:
        tokens = self.read_tokens(root)
        first, end = self.split_bounds(tokens.numel())[split]
        return tokens[first:end].clone()
