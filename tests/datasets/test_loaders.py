"""In-memory datasets (MNIST family, CIFAR) read from small files written here in the standard formats."""

import collections
import gzip
import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import datasets
from datasets import mnist_format, registry
from datasets.augment import pad_crop_flip
from datasets.catalog import fashionmnist
from datasets.seeds import epoch_order
from foundations.errors import UserError


def hparams(name: str, batch_size: int = 8, **overrides) -> SimpleNamespace:
    fields = dict(dataset_name=name, batch_size=batch_size, do_not_augment=False, transformation_seed=0,
                  subsample_fraction=None, random_labels_fraction=None)
    return SimpleNamespace(**{**fields, **overrides})


def unique_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random uint8 images whose first two pixels spell their index, so every image is identifiable."""
    images = np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)
    flat = images.reshape(n, -1)
    flat[:, 0], flat[:, 1] = np.arange(n) // 256, np.arange(n) % 256
    return images


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_mnist(directory: Path, n_train: int, n_test: int, gz: bool) -> dict:
    data = {}
    for train, n in ((True, n_train), (False, n_test)):
        images = unique_images(n, (28, 28), seed=n)
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
        image_file, label_file = mnist_format.file_names(train)
        write_idx(directory / image_file, images, gz)
        write_idx(directory / label_file, labels, gz)
        data[train] = (torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long())
    return data


def write_cifar(root: Path, name: str, n_per_file: int) -> dict:
    """CIFAR python-format batches: dicts with (n, 3072) uint8 'data' and a label list."""
    layout = {
        "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
        "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
    }
    folder, train_files, test_files, key, classes = layout[name]
    (root / folder).mkdir(parents=True)
    data = {}
    for train, files in ((True, train_files), (False, test_files)):
        n = n_per_file * len(files)
        images = unique_images(n, (3, 32, 32), seed=n + classes)
        labels = np.arange(n) * 3 % classes
        for i, f in enumerate(files):
            part = slice(i * n_per_file, (i + 1) * n_per_file)
            batch = {"data": images[part].reshape(n_per_file, 3072), key: labels[part].tolist(), "batch_label": f}
            (root / folder / f).write_bytes(pickle.dumps(batch, protocol=2))
        data[train] = (torch.from_numpy(images), torch.from_numpy(labels).long())
    return data


def pixels(x: torch.Tensor, name: str) -> torch.Tensor:
    """Undo the normalization: float (N, C, H, W) → uint8 pixels."""
    spec = registry.spec(name)
    mean, std = torch.tensor(spec.mean).view(1, -1, 1, 1), torch.tensor(spec.std).view(1, -1, 1, 1)
    return ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)


def identify(x: torch.Tensor, name: str) -> torch.Tensor:
    """Index of each (unaugmented) image, read from its first two pixels."""
    flat = pixels(x, name).flatten(1).long()
    return flat[:, 0] * 256 + flat[:, 1]


def run_epoch(loader, epoch: int = 0, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader.batches(epoch, **kwargs))
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


@pytest.mark.parametrize("name", ["mnist", "fashionmnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_round_trip(tmp_path, name, gz):
    folder = {"mnist": "MNIST", "fashionmnist": "FashionMNIST"}[name]
    data = write_mnist(tmp_path / folder / "raw", n_train=30, n_test=21, gz=gz)
    for train in (True, False):
        loader = datasets.get(hparams(name, batch_size=8), train, root=tmp_path, device="cpu")
        n = data[train][0].shape[0]
        assert (loader.num_examples, loader.batch_size, loader.num_classes) == (n, 8, 10)
        assert len(loader) == math.ceil(n / 8)
        batches = list(loader.batches(0))
        assert [tuple(b[0].shape) for b in batches] == [(8, 1, 28, 28)] * (n // 8) + [(n % 8, 1, 28, 28)]
        assert all(b[0].dtype == torch.float32 and b[1].dtype == torch.int64 for b in batches)
        x, y = run_epoch(loader)
        assert torch.equal(pixels(x, name), data[train][0])  # MNIST family: no augmentation, dataset order
        assert torch.equal(y, data[train][1])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_batches_round_trip(tmp_path, name):
    data = write_cifar(tmp_path, name, n_per_file=6 if name == "cifar10" else 20)
    for train in (True, False):
        loader = datasets.get(hparams(name, batch_size=7, do_not_augment=True), train, root=tmp_path, device="cpu")
        assert loader.num_classes == registry.info(name).num_classes
        assert len(loader) == math.ceil(data[train][0].shape[0] / 7)
        x, y = run_epoch(loader)
        assert torch.equal(pixels(x, name), data[train][0])
        assert torch.equal(y, data[train][1])


def test_normalization_uses_the_dataset_statistics(tmp_path):
    write_cifar(tmp_path, "cifar10", n_per_file=2)
    loader = datasets.get(hparams("cifar10"), False, root=tmp_path, device="cpu")
    x, _ = next(loader.batches(0))
    raw = loader.images[:1].float() / 255
    expected = (raw[0, 1, 5, 7] - 0.4822) / 0.2435  # green channel, by hand
    assert torch.allclose(x[0, 1, 5, 7], expected, atol=1e-6)


def test_training_order_is_a_permutation_of_order_seed_and_epoch(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", n_train=50, n_test=1, gz=False)
    loader = datasets.get(hparams("mnist", batch_size=16), True, root=tmp_path, device="cpu")
    order = {(epoch, seed): identify(run_epoch(loader, epoch, order_seed=seed)[0], "mnist")
             for epoch, seed in [(0, 1), (1, 1), (0, 2)]}
    for perm in order.values():
        assert torch.equal(perm.sort().values, torch.arange(50))
        assert not torch.equal(perm, torch.arange(50))
    assert not torch.equal(order[(0, 1)], order[(1, 1)])  # another epoch, another order
    assert not torch.equal(order[(0, 1)], order[(0, 2)])  # another seed, another order
    assert torch.equal(order[(0, 1)], identify(run_epoch(loader, 0, order_seed=1)[0], "mnist"))
    assert torch.equal(order[(1, 1)], epoch_order(50, 1, 1))  # the documented derivation
    assert torch.equal(identify(run_epoch(loader, 3)[0], "mnist"), torch.arange(50))  # no seed: dataset order


def test_resuming_mid_epoch_yields_the_tail_bitwise(tmp_path):
    write_cifar(tmp_path, "cifar10", n_per_file=9)  # 45 training images, augmented
    loader = datasets.get(hparams("cifar10", batch_size=8, transformation_seed=11), True, root=tmp_path, device="cpu")
    full = list(loader.batches(2, order_seed=5))
    tail = list(loader.batches(2, start=3, order_seed=5))
    assert len(full) == 6 and len(tail) == 3
    for (x1, y1), (x2, y2) in zip(full[3:], tail):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert list(loader.batches(2, start=6, order_seed=5)) == []
    registry.clear_cache()  # a new process reading the files again sees the same epoch
    again = datasets.get(hparams("cifar10", batch_size=8, transformation_seed=11), True, root=tmp_path, device="cpu")
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full, again.batches(2, order_seed=5)))
    other_epoch = next(loader.batches(3, order_seed=5))[0]
    assert not torch.equal(full[0][0], other_epoch)
    with pytest.raises(ValueError):
        loader.batches(0, start=7)


def crop_candidates(image: torch.Tensor, padding: int) -> torch.Tensor:
    """Every pad-crop of `image`, flipped and not: shape ((2p+1)^2 * 2, C, H, W)."""
    span = range(2 * padding + 1)
    params = torch.tensor([[dy, dx, f] for dy in span for dx in span for f in (0, 1)])
    return pad_crop_flip(image.expand(len(params), *image.shape), params, padding)


def test_cifar_augmentation_is_a_seeded_pad_crop_flip(tmp_path):
    data = write_cifar(tmp_path, "cifar10", n_per_file=6)
    loader = datasets.get(hparams("cifar10", batch_size=10), True, root=tmp_path, device="cpu")
    x, y = run_epoch(loader, 0)  # dataset order, so example i is image i augmented
    augmented = pixels(x, "cifar10")
    shifted = flipped = 0
    for i, image in enumerate(data[True][0]):
        matches = (crop_candidates(image, 4) == augmented[i]).flatten(1).all(1).nonzero().flatten().tolist()
        assert matches, f"image {i} is not a 4-pixel pad-crop/flip of its original"
        shifted += not torch.equal(augmented[i], image) and not torch.equal(augmented[i], image.flip(-1))
        flipped += all(m % 2 == 1 for m in matches)
    assert shifted > 10 and 5 < flipped < 25  # 30 images: most shifted, about half flipped
    assert torch.equal(y, data[True][1])
    assert not torch.equal(x, run_epoch(loader, 1)[0])  # fresh randomness each epoch
    plain = datasets.get(hparams("cifar10", do_not_augment=True), True, root=tmp_path, device="cpu")
    assert torch.equal(pixels(run_epoch(plain)[0], "cifar10"), data[True][0])


def test_pad_crop_flip_by_hand():
    image = torch.arange(1, 10, dtype=torch.uint8).view(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]
    params = torch.tensor([[0, 0, 0], [2, 1, 0], [1, 1, 1], [1, 2, 1]])
    out = pad_crop_flip(image.expand(4, 1, 3, 3), params, padding=1)[:, 0].tolist()
    assert out[0] == [[0, 0, 0], [0, 1, 2], [0, 4, 5]]  # window at the padded top-left
    assert out[1] == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]  # shifted up by one
    assert out[2] == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]  # centred and mirrored
    assert out[3] == [[0, 3, 2], [0, 6, 5], [0, 9, 8]]  # shifted left, then mirrored


def test_subsample_keeps_a_seeded_fraction_of_the_training_set(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", n_train=40, n_test=12, gz=True)
    kept = {}
    for seed in (0, 0, 1):
        h = hparams("mnist", batch_size=64, subsample_fraction=0.25, transformation_seed=seed)
        loader = datasets.get(h, True, root=tmp_path, device="cpu")
        assert loader.num_examples == 10 and len(loader) == 1
        ids = identify(run_epoch(loader)[0], "mnist")
        assert torch.equal(ids, ids.unique())  # distinct examples, in dataset order
        assert kept.setdefault(seed, ids).equal(ids)  # same seed, same subset
        assert torch.equal(run_epoch(loader)[1], (ids * 7 % 10))  # labels follow their images
    assert not torch.equal(kept[0], kept[1])
    test = datasets.get(hparams("mnist", subsample_fraction=0.25), False, root=tmp_path, device="cpu")
    assert test.num_examples == 12  # the test split is never subsampled
    with pytest.raises(UserError, match="subsample_fraction"):
        datasets.get(hparams("mnist", subsample_fraction=1.5), True, root=tmp_path, device="cpu")


def test_random_labels_replace_a_seeded_fraction(tmp_path):
    data = write_mnist(tmp_path / "MNIST" / "raw", n_train=200, n_test=10, gz=False)
    true_labels = data[True][1]
    labels = {}
    for seed in (3, 3, 4):
        h = hparams("mnist", batch_size=50, random_labels_fraction=0.5, transformation_seed=seed)
        x, y = run_epoch(datasets.get(h, True, root=tmp_path, device="cpu"))
        assert torch.equal(pixels(x, "mnist"), data[True][0])  # images untouched
        assert labels.setdefault(seed, y).equal(y)
        changed = int((y != true_labels).sum())
        assert 70 <= changed <= 100  # 100 redrawn; a redraw keeps its label with probability 1/10
        assert y.min() >= 0 and y.max() < 10
    assert not torch.equal(labels[3], labels[4])
    test = datasets.get(hparams("mnist", random_labels_fraction=0.5), False, root=tmp_path, device="cpu")
    assert torch.equal(run_epoch(test)[1], data[False][1])


def test_examples_per_class_gives_n_unaugmented_examples_of_each_class(tmp_path):
    data = write_cifar(tmp_path, "cifar10", n_per_file=8)  # 40 images, labels 3i mod 10: 4 per class
    loader = datasets.get(hparams("cifar10"), True, root=tmp_path, device="cpu")
    x, y = loader.examples_per_class(3, seed=1)
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(y, torch.arange(10).repeat_interleave(3))
    ids = identify(x, "cifar10")
    assert torch.equal(pixels(x, "cifar10"), data[True][0][ids])  # exact originals: no augmentation
    assert torch.equal(data[True][1][ids], y) and ids.unique().numel() == 30
    assert torch.equal(loader.examples_per_class(3, seed=1)[0], x)
    assert not torch.equal(identify(loader.examples_per_class(3, seed=2)[0], "cifar10"), ids)
    with pytest.raises(UserError, match="per class"):
        loader.examples_per_class(5, seed=1)


def test_missing_dataset_names_the_directory_and_files(tmp_path, monkeypatch):
    monkeypatch.setattr(fashionmnist, "DEBIAN_DIR", tmp_path / "debian")
    with pytest.raises(UserError) as error:
        datasets.get(hparams("mnist"), True, root=tmp_path, device="cpu")
    assert str(tmp_path / "MNIST" / "raw") in str(error.value) and "train-images-idx3-ubyte" in str(error.value)
    with pytest.raises(UserError) as error:
        datasets.get(hparams("fashionmnist"), False, root=tmp_path, device="cpu")
    message = str(error.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message and str(tmp_path / "debian") in message
    assert "t10k-labels-idx1-ubyte" in message and "apt-get install dataset-fashion-mnist" in message
    assert "\n" not in message
    with pytest.raises(UserError, match="cifar-100-python"):
        datasets.get(hparams("cifar100"), True, root=tmp_path, device="cpu")


def test_a_pickle_that_is_not_a_cifar_batch_is_refused(tmp_path):
    write_cifar(tmp_path, "cifar100", n_per_file=4)
    not_a_batch = {"data": collections.OrderedDict()}  # names a global outside the allowed few
    (tmp_path / "cifar-100-python" / "test").write_bytes(pickle.dumps(not_a_batch))
    with pytest.raises(UserError, match="not a CIFAR batch.*OrderedDict"):
        datasets.get(hparams("cifar100"), False, root=tmp_path, device="cpu")


def test_fashion_mnist_falls_back_to_the_debian_directory(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    data = write_mnist(debian, n_train=12, n_test=9, gz=True)
    monkeypatch.setattr(fashionmnist, "DEBIAN_DIR", debian)
    loader = datasets.get(hparams("fashionmnist"), False, root=tmp_path / "empty_root", device="cpu")
    x, y = run_epoch(loader)
    assert torch.equal(pixels(x, "fashionmnist"), data[False][0]) and torch.equal(y, data[False][1])
    root_copy = write_mnist(tmp_path / "root" / "FashionMNIST" / "raw", n_train=5, n_test=4, gz=False)
    loader = datasets.get(hparams("fashionmnist"), False, root=tmp_path / "root", device="cpu")
    assert torch.equal(run_epoch(loader)[1], root_copy[False][1])  # the root wins over the fallback


def test_a_split_is_read_from_disk_once_per_process(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", n_train=10, n_test=10, gz=False)
    first = datasets.get(hparams("mnist"), True, root=tmp_path, device="cpu")
    for f in (tmp_path / "MNIST" / "raw").iterdir():
        f.unlink()
    second = datasets.get(hparams("mnist", batch_size=3), True, root=tmp_path, device="cpu")
    assert second.images is first.images and second.num_examples == 10
    registry.clear_cache()
    with pytest.raises(UserError):
        datasets.get(hparams("mnist"), True, root=tmp_path, device="cpu")


def test_registry_facts_and_unknown_names():
    assert datasets.names() == ["mnist", "fashionmnist", "cifar10", "cifar100", "tinyimagenet", "tinyimagenet2",
                                "imagenet", "xor", "sine", "iris", "wine", "breastcancer", "fortunes"]
    assert datasets.info("cifar100") == registry.DatasetInfo("cifar100", 100, (3, 32, 32), 50000, 10000)
    assert datasets.info("imagenet").input_shape == (3, 224, 224)
    assert datasets.info("tinyimagenet").num_classes == 200
    with pytest.raises(UserError, match="mnist, fashionmnist, cifar10"):
        datasets.info("svhn")
    with pytest.raises(UserError, match="batch_size"):
        datasets.get(hparams("mnist", batch_size=0), True, root=Path("/nonexistent"), device="cpu")


@pytest.mark.skipif(not fashionmnist.DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_the_installed_fashion_mnist_matches_its_published_facts(tmp_path):
    info = datasets.info("fashionmnist")
    for train, n in ((True, info.num_train), (False, info.num_test)):
        loader = datasets.get(hparams("fashionmnist", batch_size=n), train, root=tmp_path, device="cpu")
        assert loader.num_examples == n and len(loader) == 1
        x, y = next(loader.batches(0))
        assert torch.equal(torch.bincount(y), torch.full((10,), n // 10))  # balanced classes
        if train:  # the normalization constants are this split's statistics
            assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01


def test_download_runs_torchvisions_downloader_for_the_split_and_reads_what_it_wrote(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class Downloader:  # stands in for torchvision.datasets.MNIST, which would fetch the files
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_mnist(Path(root) / "MNIST" / "raw", n_train=6, n_test=4, gz=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", Downloader)
    registry.clear_cache()
    loader = datasets.get(hparams("mnist", batch_size=2), True, root=tmp_path, device="cpu", download=True)
    assert calls == [(str(tmp_path), True, True)] and loader.num_examples == 6


def test_a_failed_download_is_one_error_that_says_where_the_files_go(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(root, train, download):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    registry.clear_cache()
    with pytest.raises(UserError, match=r"downloading mnist into .*MNIST/raw failed \(network is unreachable\)"):
        datasets.get(hparams("mnist"), True, root=tmp_path, device="cpu", download=True)


@pytest.mark.parametrize("normalization, expected", [
    ("imagenet", lambda p: (p / 255 - 0.456) / 0.224),  # OpenLTH's CIFAR statistics, green channel
    ("unit", lambda p: p / 255),                        # SpaM: pixels in [0, 1]
    ("raw", lambda p: p),                               # LEGCNet's MNIST nets: 0-255 values
])
def test_input_normalization_choices_by_hand(tmp_path, normalization, expected):
    write_cifar(tmp_path, "cifar10", n_per_file=2)
    loader = datasets.get(hparams("cifar10", input_normalization=normalization), False, root=tmp_path, device="cpu")
    x, _ = next(loader.batches(0))
    pixel = loader.images[0, 1, 5, 7].float()
    assert x[0, 1, 5, 7].item() == pytest.approx(expected(pixel).item(), abs=1e-6)
    if normalization == "raw":
        assert torch.equal(x, loader.images[:x.shape[0]].float())  # exactly the stored values


def test_imagenet_statistics_need_colour_images(tmp_path, dataset_root):
    with pytest.raises(UserError, match="colour images"):
        datasets.get(hparams("mnist", input_normalization="imagenet"), False, root=dataset_root, device="cpu")


def test_a_table_is_standardized_unless_raw(tmp_path):
    standardized = datasets.get(hparams("iris"), True, root=tmp_path, device="cpu")
    raw = datasets.get(hparams("iris", input_normalization="raw"), True, root=tmp_path, device="cpu")
    assert torch.allclose(standardized.images.mean(0), torch.zeros(4), atol=1e-5)
    assert raw.images.min() > 0 and raw.images.max() < 8  # iris in centimetres
    with pytest.raises(UserError, match="is a table"):
        datasets.get(hparams("iris", input_normalization="unit"), True, root=tmp_path, device="cpu")


def test_the_legcnet_split_is_numpys_seed_42_shuffle_with_its_own_test_statistics(tmp_path):
    """--table_split=legcnet: the rows in the order np.random.seed(42); np.random.shuffle leaves
    them, the first 120 train (and --data_order=fixed keeps that order), the last 30 test, each
    standardized with its own mean and std."""
    from sklearn.datasets import load_iris

    from foundations.bundles import FIXED_ORDER

    h = hparams("iris", batch_size=1, table_split="legcnet")
    train = datasets.get(h, True, root=tmp_path, device="cpu")
    test = datasets.get(h, False, root=tmp_path, device="cpu")
    x, y = load_iris(return_X_y=True)
    rows = np.arange(150)
    np.random.seed(42)
    np.random.shuffle(rows)
    assert train.labels.tolist() == y[rows[:120]].tolist() and test.labels.tolist() == y[rows[120:]].tolist()
    own = (x[rows[120:]] - x[rows[120:]].mean(0)) / x[rows[120:]].std(0)
    assert np.allclose(test.images.numpy(), own, atol=1e-5)
    assert [int(label) for _, label in train.batches(0, order_seed=FIXED_ORDER)] == y[rows[:120]].tolist()
    with pytest.raises(UserError, match="--table_split is for tables"):
        datasets.get(hparams("mnist", table_split="legcnet"), True, root=tmp_path, device="cpu")
