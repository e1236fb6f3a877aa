"""ImageNet and Tiny ImageNet loaders on small folder trees written here in the official layouts."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

import datasets
from datasets.augment import pad_crop_flip
from datasets.seeds import epoch_order
from foundations.errors import UserError
from tests.datasets.test_loaders import identify, pixels, run_epoch

WNIDS = ["n01443537", "n01629819", "n01641577"]


def hparams(name: str, batch_size: int = 4, **overrides) -> SimpleNamespace:
    fields = dict(dataset_name=name, batch_size=batch_size, do_not_augment=False, transformation_seed=0,
                  subsample_fraction=None, random_labels_fraction=None)
    return SimpleNamespace(**{**fields, **overrides})


def unique_image(index: int, size: int) -> torch.Tensor:
    """A random uint8 (3, size, size) image whose first two pixels spell `index`."""
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(index))
    image[0, 0, 0], image[0, 0, 1] = index // 256, index % 256
    return image


def write_tiny(root: Path, per_class: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Official Tiny ImageNet layout; train images are PNG (exact), val images are flat-colour JPEGs.
    Returns the training images and labels in dataset order (class, then file name)."""
    base = root / "tiny-imagenet-200"
    images, labels = [], []
    for label, wnid in enumerate(WNIDS):
        (base / "train" / wnid / "images").mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("not an image\n")
        for i in range(per_class):
            image = unique_image(len(images), 64)
            write_png(image, str(base / "train" / wnid / "images" / f"{wnid}_{i}.png"))
            images.append(image)
            labels.append(label)
    (base / "val" / "images").mkdir(parents=True)
    annotations = []
    for i, wnid in enumerate(["n01641577", "n01443537", "n01641577", "n01629819", "n01443537"]):
        colour = torch.tensor([40 * i, 255 - 30 * i, 100], dtype=torch.uint8).view(3, 1, 1).expand(3, 64, 64)
        write_jpeg(colour.contiguous(), str(base / "val" / "images" / f"val_{i}.JPEG"), quality=100)
        annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return torch.stack(images), torch.tensor(labels)


def write_png(image: torch.Tensor, path: str) -> None:
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, format="PNG")


def write_jpeg(image: torch.Tensor, path: str, quality: int) -> None:
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, format="JPEG", quality=quality)




def test_tiny_imagenet_training_files_round_trip_in_dataset_order(tmp_path):
    images, labels = write_tiny(tmp_path)
    h = hparams("tinyimagenet", batch_size=5, do_not_augment=True)
    loader = datasets.get(h, True, root=tmp_path, device="cpu")
    assert (loader.num_examples, loader.num_classes, len(loader)) == (12, 3, math.ceil(12 / 5))
    batches = list(loader.batches(0))
    assert [tuple(b[0].shape) for b in batches] == [(5, 3, 64, 64), (5, 3, 64, 64), (2, 3, 64, 64)]
    assert all(b[0].dtype == torch.float32 and b[1].dtype == torch.int64 for b in batches)
    x, y = run_epoch(loader)
    assert torch.equal(pixels(x, "tinyimagenet"), images) and torch.equal(y, labels)


def test_tiny_imagenet_official_val_layout_reads_labels_from_the_annotations(tmp_path):
    write_tiny(tmp_path)
    loader = datasets.get(hparams("tinyimagenet", batch_size=2), False, root=tmp_path, device="cpu")
    x, y = run_epoch(loader)
    assert y.tolist() == [2, 0, 2, 1, 0]  # annotation order; indices from the sorted train wnids
    expected = torch.tensor([[40 * i, 255 - 30 * i, 100] for i in range(5)])
    assert (pixels(x, "tinyimagenet")[:, :, 32, 32].int() - expected).abs().max() <= 2  # JPEG at quality 100


def test_tiny_imagenet_val_also_accepts_one_folder_per_class(tmp_path):
    images, _ = write_tiny(tmp_path)
    val = tmp_path / "tiny-imagenet-200" / "val"
    (val / "val_annotations.txt").unlink()
    for wnid, image in [(WNIDS[2], images[0]), (WNIDS[1], images[1])]:  # the first class has no val folder
        (val / wnid).mkdir()
        write_png(image, str(val / wnid / "a.png"))
    x, y = run_epoch(datasets.get(hparams("tinyimagenet"), False, root=tmp_path, device="cpu"))
    assert y.tolist() == [1, 2]  # indices agree with train/, not renumbered from the val folders
    assert torch.equal(pixels(x, "tinyimagenet"), images[[1, 0]])


def test_folder_training_order_is_the_seeded_permutation(tmp_path):
    write_tiny(tmp_path)
    loader = datasets.get(hparams("tinyimagenet", do_not_augment=True), True, root=tmp_path, device="cpu")
    first = identify(run_epoch(loader, 1, order_seed=9)[0], "tinyimagenet")
    assert torch.equal(first, epoch_order(12, 9, 1))  # same derivation as the in-memory sets
    assert not torch.equal(first, identify(run_epoch(loader, 2, order_seed=9)[0], "tinyimagenet"))
    assert not torch.equal(first, torch.arange(12))


def crop_candidates(image: torch.Tensor, padding: int) -> torch.Tensor:
    span = range(2 * padding + 1)
    params = torch.tensor([[dy, dx, f] for dy in span for dx in span for f in (0, 1)])
    return pad_crop_flip(image.expand(len(params), *image.shape), params, padding)


def test_tiny_imagenet_augmentation_is_a_pad_crop_flip_seeded_per_position(tmp_path):
    images, _ = write_tiny(tmp_path)
    h = hparams("tinyimagenet", batch_size=5, transformation_seed=4)
    loader = datasets.get(h, True, root=tmp_path, device="cpu")
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    full = list(loader.batches(0, order_seed=2))
    assert torch.equal(torch.rand(3), expected_next)  # the caller's generator is left alone
    tail = list(loader.batches(0, start=1, order_seed=2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[1:], tail))
    order = epoch_order(12, 2, 0)
    augmented = pixels(torch.cat([b[0] for b in full]), "tinyimagenet")
    moved = 0
    for position, index in enumerate(order.tolist()):
        candidates = crop_candidates(images[index], 4)
        assert (candidates == augmented[position]).flatten(1).all(1).any(), f"example {index} is not a pad-crop/flip"
        moved += not torch.equal(augmented[position], images[index])
    assert moved >= 9
    assert not torch.equal(full[0][0], next(loader.batches(1, order_seed=2))[0])


def test_folder_batches_do_not_depend_on_the_number_of_workers(tmp_path):
    write_tiny(tmp_path, per_class=2)
    h = hparams("tinyimagenet", batch_size=2, transformation_seed=8)
    in_process = list(datasets.get(h, True, root=tmp_path, device="cpu").batches(3, start=1, order_seed=1))
    workers = datasets.get(h, True, root=tmp_path, device="cpu", num_workers=2)
    with_workers = list(workers.batches(3, start=1, order_seed=1))
    assert len(in_process) == 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(in_process, with_workers))


def test_folder_examples_per_class_are_unaugmented_originals(tmp_path):
    images, labels = write_tiny(tmp_path)
    loader = datasets.get(hparams("tinyimagenet"), True, root=tmp_path, device="cpu")
    x, y = loader.examples_per_class(2, seed=5)
    assert x.shape == (6, 3, 64, 64) and y.tolist() == [0, 0, 1, 1, 2, 2]
    ids = identify(x, "tinyimagenet")
    assert torch.equal(pixels(x, "tinyimagenet"), images[ids]) and torch.equal(labels[ids], y)
    assert ids.unique().numel() == 6
    with pytest.raises(UserError, match="per class"):
        loader.examples_per_class(5, seed=5)


def test_folder_subsample_and_random_labels_are_seeded(tmp_path):
    _, labels = write_tiny(tmp_path)
    h = hparams("tinyimagenet", batch_size=12, do_not_augment=True, subsample_fraction=0.5, transformation_seed=1)
    x, y = run_epoch(datasets.get(h, True, root=tmp_path, device="cpu"))
    ids = identify(x, "tinyimagenet")
    assert ids.numel() == 6 and torch.equal(ids, ids.unique()) and torch.equal(y, labels[ids])
    again = run_epoch(datasets.get(h, True, root=tmp_path, device="cpu"))[0]
    assert torch.equal(ids, identify(again, "tinyimagenet"))
    h = hparams("tinyimagenet", batch_size=12, do_not_augment=True, random_labels_fraction=1.0, transformation_seed=1)
    y1 = run_epoch(datasets.get(h, True, root=tmp_path, device="cpu"))[1]
    y2 = run_epoch(datasets.get(h, True, root=tmp_path, device="cpu"))[1]
    assert torch.equal(y1, y2) and not torch.equal(y1, labels) and 0 <= y1.min() and y1.max() < 3
    assert datasets.get(h, False, root=tmp_path, device="cpu").num_examples == 5  # the val split is untouched


def test_imagenet_eval_is_resize_256_then_centre_crop_224(tmp_path):
    base = tmp_path / "imagenet"
    originals = {}
    for label, wnid in enumerate(WNIDS[:2]):
        for split in ("train", "val"):
            (base / split / wnid).mkdir(parents=True)
        for i in range(2):
            image = unique_image(100 + 2 * label + i, 256)
            write_jpeg(image, str(base / "train" / wnid / f"{wnid}_{i}.JPEG"), quality=90)
        originals[label] = unique_image(label, 256)
        write_png(originals[label], str(base / "val" / wnid / "val.png"))
    val = datasets.get(hparams("imagenet"), False, root=tmp_path, device="cpu")
    x, y = run_epoch(val)
    assert x.shape == (2, 3, 224, 224) and y.tolist() == [0, 1]
    assert torch.equal(pixels(x, "imagenet"), torch.stack([originals[0], originals[1]])[:, :, 16:240, 16:240])
    train = datasets.get(hparams("imagenet", batch_size=3), True, root=tmp_path, device="cpu")
    batches = list(train.batches(0, order_seed=0))
    assert [tuple(b[0].shape) for b in batches] == [(3, 3, 224, 224), (1, 3, 224, 224)]
    assert torch.equal(batches[1][0], next(train.batches(0, start=1, order_seed=0))[0])


def test_missing_folder_datasets_name_the_directory(tmp_path):
    with pytest.raises(UserError) as error:
        datasets.get(hparams("imagenet"), True, root=tmp_path, device="cpu")
    assert str(tmp_path / "imagenet" / "train") in str(error.value) and "image-net.org" in str(error.value)
    write_tiny(tmp_path, per_class=1)
    for f in sorted((tmp_path / "tiny-imagenet-200" / "val").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    with pytest.raises(UserError, match=str(tmp_path / "tiny-imagenet-200" / "val")):
        datasets.get(hparams("tinyimagenet"), False, root=tmp_path, device="cpu")
