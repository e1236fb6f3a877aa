"""CIFAR-100: 32x32 colour images of 100 fine classes, the python-version batches in `<root>/cifar-100-python/`."""

from datasets.cifar_format import PickledBatches
from datasets.spec import DatasetSpec

NAME = "cifar100"
SUMMARY = "CIFAR-100: 32x32 colour images, 100 fine classes"

SPEC = DatasetSpec(
    name=NAME,
    num_classes=100,
    input_shape=(3, 32, 32),
    num_train=50000,
    num_test=10000,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    files=PickledBatches(
        directory="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        label_key="fine_labels",
        download_class="CIFAR100",
    ),
    pad_crop=4,
    rank=40,
)
