"""Datasets: a registry of names, and loaders that yield normalized batches on the device.

Every loader has `num_examples`, `batch_size`, `num_classes`, `len()` (iterations per epoch) and
`batches(epoch, start=0, order_seed=None)`:
  * order_seed None → the split in dataset order (evaluation); else a permutation that depends on
    (order_seed, epoch) only.
  * training augmentation is seeded from (transformation_seed, epoch) and the position in the epoch
    only, so `batches(e, start=k)` yields bitwise the batches k.. of an uninterrupted epoch e.
MNIST, Fashion-MNIST and CIFAR-10/100 live on the device as uint8 tensors (InMemoryLoader);
ImageNet and Tiny ImageNet are decoded from files by DataLoader workers (FolderLoader).

Each dataset is one module in datasets/catalog/ that declares `NAME`, `SUMMARY` and `SPEC`, a
`DatasetSpec` (datasets/spec.py): its facts, statistics, file layout and augmentation. The registry
(datasets/registry.py, by the convention of foundations/registry.py) finds them; the format modules
(mnist_format, cifar_format, folder_format, table_format) read whatever layout a spec gives them.
"""

from datasets.registry import DatasetInfo, clear_cache, get, info, names

__all__ = ["DatasetInfo", "clear_cache", "get", "info", "names"]
