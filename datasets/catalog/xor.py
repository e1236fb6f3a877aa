"""xor: the four rows of the truth table, y = x1 xor x2, as a regression target (one output).

The orderedness paper trains on these four rows and reports the error on them: there is no
held-out data, so the evaluation ("test") split is the training set itself.
"""

import torch

from datasets.spec import DatasetSpec
from datasets.table_format import TensorTable

NAME = "xor"
SUMMARY = "the four rows of the xor truth table, a regression target (no held-out data)"


def rows() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return x, (x[:, 0] != x[:, 1]).float().unsqueeze(1)


SPEC = DatasetSpec(name=NAME, num_classes=1, input_shape=(2,), num_train=4, num_test=4, mean=(), std=(),
                   files=TensorTable(rows), task="regression", rank=60)
