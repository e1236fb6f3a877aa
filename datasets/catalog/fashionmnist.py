"""Fashion-MNIST: 28x28 grey clothing images, in `<root>/FashionMNIST/raw/` or Debian's copy.

Debian's package dataset-fashion-mnist installs the gzipped files flat in `DEBIAN_DIR`; it is
searched when the dataset root lacks them (read when the files are looked for, so it can be moved).
"""

from pathlib import Path

from datasets.mnist_format import IdxFiles
from datasets.spec import DatasetSpec

NAME = "fashionmnist"
SUMMARY = "Fashion-MNIST: clothing images, 28x28 grey, 10 classes"

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def _debian_dir() -> Path:
    return DEBIAN_DIR


SPEC = DatasetSpec(
    name=NAME,
    num_classes=10,
    input_shape=(1, 28, 28),
    num_train=60000,
    num_test=10000,
    mean=(0.2860,),
    std=(0.3530,),
    files=IdxFiles(
        directory="FashionMNIST",
        download_class="FashionMNIST",
        fallback=_debian_dir,
        how_to_get="run `apt-get install dataset-fashion-mnist`, copy the files into {directory}, or pass --download",
    ),
    rank=20,
)
