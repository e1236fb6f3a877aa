"""scikit-learn's bundled tables as datasets: no download, read from the installed package.

Each is split once into train and test (20% of every class held out, seed 0: the split is part of
the dataset, the same for every run) and standardized with the training rows' statistics. The
table's sizes are written down here so that listing datasets does not import scikit-learn; a test
checks them against the package.
"""

import torch

from datasets.spec import DatasetSpec
from datasets.table_format import TensorTable

TEST_FRACTION = 0.2


def table_spec(name: str, loader_name: str, class_sizes: tuple[int, ...], num_features: int,
               rank: int) -> DatasetSpec:
    def rows() -> tuple[torch.Tensor, torch.Tensor]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        return torch.tensor(bunch.data, dtype=torch.float64), torch.tensor(bunch.target, dtype=torch.int64)

    held_out = sum(min(max(1, round(TEST_FRACTION * size)), size - 1) for size in class_sizes)
    return DatasetSpec(name=name, num_classes=len(class_sizes), input_shape=(num_features,),
                       num_train=sum(class_sizes) - held_out, num_test=held_out, mean=(), std=(),
                       files=TensorTable(rows, test_fraction=TEST_FRACTION, standardize=True), rank=rank)
