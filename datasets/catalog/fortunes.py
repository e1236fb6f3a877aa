"""fortunes: the English text of Debian's `fortunes` package (fortune-mod's cookie files), as bytes.

`apt-get install fortunes` (with `fortunes-min`) puts about 2.6 MB of plain text, fortunes separated
by `%` lines, in `DEBIAN_DIR`; it is searched when `<root>/fortunes/` has no files. The text is
under fortune-mod's BSD licence (/usr/share/doc/fortunes/copyright). Split by position (see
datasets/text_format.py): the first 90% of the bytes train, the next 5% validate, the last 5% test.
"""

from pathlib import Path

from datasets.spec import DatasetSpec
from datasets.text_format import VOCABULARY, TextCorpus

NAME = "fortunes"
SUMMARY = "Debian's fortune cookies: ~2.6 MB of English text, byte-level language modelling"

DEBIAN_DIR = Path("/usr/share/games/fortunes")


def _debian_dir() -> Path:
    return DEBIAN_DIR


SPEC = DatasetSpec(
    name=NAME, num_classes=VOCABULARY, input_shape=(128,), num_train=2_318_000, num_test=128_800, mean=(), std=(),
    files=TextCorpus(directory="fortunes", fallback=_debian_dir,
                     how_to_get="run `apt-get install fortunes`, or copy plain-text files into {directory}"),
    task="language_modeling", rank=80)
