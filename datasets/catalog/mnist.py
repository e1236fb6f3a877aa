"""MNIST: handwritten digits, 28x28 grey, in torchvision's layout `<root>/MNIST/raw/`."""

from datasets.mnist_format import IdxFiles
from datasets.spec import DatasetSpec

NAME = "mnist"
SUMMARY = "MNIST: handwritten digits, 28x28 grey, 10 classes"

SPEC = DatasetSpec(
    name=NAME,
    num_classes=10,
    input_shape=(1, 28, 28),
    num_train=60000,
    num_test=10000,
    mean=(0.1307,),
    std=(0.3081,),
    files=IdxFiles(directory="MNIST", download_class="MNIST"),
    rank=10,
)
