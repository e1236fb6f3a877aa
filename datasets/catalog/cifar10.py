"""CIFAR-10: 32x32 colour images of 10 classes, the python-version batches in `<root>/cifar-10-batches-py/`."""

from datasets.cifar_format import PickledBatches
from datasets.spec import DatasetSpec

NAME = "cifar10"
SUMMARY = "CIFAR-10: 32x32 colour images, 10 classes"

SPEC = DatasetSpec(
    name=NAME,
    num_classes=10,
    input_shape=(3, 32, 32),
    num_train=50000,
    num_test=10000,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    files=PickledBatches(
        directory="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key="labels",
        download_class="CIFAR10",
    ),
    pad_crop=4,
    rank=30,
)
