"""What one catalog entry's SPEC declares: a dataset's facts and how its files are stored and augmented.

A `DatasetSpec` is plain data. Its `files` field is one of the format layouts, which say where the
files sit under the dataset root and what they are called:
  mnist_format.IdxFiles         IDX files, held in memory (MNIST family)
  cifar_format.PickledBatches   CIFAR python-format batches, held in memory
  folder_format.ImageFolders    one folder of images per class, decoded by DataLoader workers
  table_format.TensorTable      rows built in memory (synthetic tasks, scikit-learn's tables)
  text_format.TextCorpus        plain text as one byte-token tensor (language modelling)
"""

from dataclasses import dataclass

from datasets.cifar_format import PickledBatches
from datasets.folder_format import ImageFolders
from datasets.mnist_format import IdxFiles
from datasets.table_format import TensorTable
from datasets.text_format import TextCorpus

TASKS = ("classification", "regression", "language_modeling")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int  # the number of model outputs (for regression: the target's width)
    input_shape: tuple[int, ...]  # one model input: (C, H, W) images, (features,) tables, (context,) text
    num_train: int
    num_test: int
    task: str = "classification"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: what `datasets.info` reports, its normalization, and how `datasets.get` reads it.

    mean, std: per-channel statistics of the training images, in [0, 1] pixel units.
    files: where the files are and how they are read (see the module docstring).
    pad_crop: in-memory sets only: training augmentation is a pad-crop by this many pixels plus a
        random horizontal flip, done on the device; None for no augmentation. Folder sets declare
        their transforms in their `ImageFolders` instead.
    rank: position in `datasets.names()` and in error messages (ascending, ties broken by name).
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    num_train: int
    num_test: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    files: IdxFiles | PickledBatches | ImageFolders | TensorTable | TextCorpus
    pad_crop: int | None = None
    rank: int = 100
    task: str = "classification"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task must be one of {TASKS}, got {self.task!r}")
        if (self.task == "language_modeling") != isinstance(self.files, TextCorpus):
            raise ValueError(f"{self.name}: a TextCorpus is read for the language_modeling task, and only for it")
        if isinstance(self.files, TextCorpus):
            if len(self.input_shape) != 1 or self.input_shape[0] < 1 or self.mean or self.std:
                raise ValueError(f"{self.name}: a corpus has input_shape (context,) and no pixel mean/std")
        elif isinstance(self.files, TensorTable):
            if len(self.input_shape) != 1 or self.input_shape[0] < 1 or self.mean or self.std:
                raise ValueError(f"{self.name}: a table has input_shape (features,) and no pixel mean/std")
        else:
            channels = self.input_shape[0] if len(self.input_shape) == 3 else None
            if channels is None or min(self.input_shape) < 1:
                raise ValueError(f"{self.name}: input_shape must be (channels, height, width), got {self.input_shape}")
            if len(self.mean) != channels or len(self.std) != channels or min(self.std) <= 0:
                raise ValueError(f"{self.name}: mean and std need one value per channel ({channels}), std > 0")
        if min(self.num_classes, self.num_train, self.num_test) < 1:
            raise ValueError(f"{self.name}: num_classes, num_train and num_test must be positive")
        computed = (ImageFolders, TensorTable, TextCorpus)  # no in-memory image augmentation
        if self.pad_crop is not None and (self.pad_crop < 1 or isinstance(self.files, computed)):
            raise ValueError(f"{self.name}: pad_crop is a positive padding for in-memory sets only")

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, self.num_classes, self.input_shape, self.num_train, self.num_test, self.task)
