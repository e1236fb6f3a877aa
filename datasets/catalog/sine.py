"""sine: 150 rows x = arange(0, 3, 0.01) taken in pairs, y = (sin x1 + sin x2) / 2 (regression).

As for xor, the orderedness paper has no held-out data: the evaluation split is the training set.
"""

import torch

from datasets.spec import DatasetSpec
from datasets.table_format import TensorTable

NAME = "sine"
SUMMARY = "150 pairs x, y = (sin x1 + sin x2) / 2, regression (no held-out data)"


def rows() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(0, 3, 0.01, dtype=torch.float64).reshape(-1, 2)
    y = (x[:, 0].sin() + x[:, 1].sin()) / 2
    return x.float(), y.float().unsqueeze(1)


SPEC = DatasetSpec(name=NAME, num_classes=1, input_shape=(2,), num_train=150, num_test=150, mean=(), std=(),
                   files=TensorTable(rows), task="regression", rank=61)
