"""The dataset catalog: adding a dataset is adding one file, and a bad entry is refused."""

import importlib
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

import datasets
from datasets import catalog, registry
from datasets.folder_format import ImageFolders
from datasets.mnist_format import IdxFiles
from datasets.spec import DatasetInfo, DatasetSpec
from foundations.errors import UserError
from tests.datasets.test_loaders import crop_candidates, unique_images, write_idx
from tests.models.test_families import assert_registry_convention

SHIPPED = ["mnist", "fashionmnist", "cifar10", "cifar100", "tinyimagenet", "tinyimagenet2", "imagenet", "xor", "sine",
           "iris", "wine", "breastcancer", "fortunes"]

# A made-up MNIST-format dataset: its own folder, file names, size, classes, statistics and augmentation.
SCRIPT_DIGITS = '''
from datasets.mnist_format import IdxFiles
from datasets.spec import DatasetSpec

NAME = "scriptdigits"
SUMMARY = "made-up handwritten script digits, 12x12 grey, 7 classes"

SPEC = DatasetSpec(
    name=NAME,
    num_classes=7,
    input_shape=(1, 12, 12),
    num_train=21,
    num_test=14,
    mean=(0.25,),
    std=(0.5,),
    files=IdxFiles(
        directory="ScriptDigits",
        train_files=("sd-train-images.idx", "sd-train-labels.idx"),
        test_files=("sd-test-images.idx", "sd-test-labels.idx"),
    ),
    pad_crop=2,
)
'''


def hparams(name: str, batch_size: int = 8, **overrides) -> SimpleNamespace:
    fields = dict(dataset_name=name, batch_size=batch_size, do_not_augment=False, transformation_seed=0,
                  subsample_fraction=None, random_labels_fraction=None)
    return SimpleNamespace(**{**fields, **overrides})


@pytest.fixture
def extra_catalog(tmp_path, monkeypatch):
    """A second catalog directory the registry searches; modules written there are forgotten afterwards."""
    extra = tmp_path / "catalog"
    extra.mkdir()
    folders = [*catalog.__path__, str(extra)]
    monkeypatch.setattr(catalog, "__path__", folders)  # where imports and the registry look
    registry.refresh()
    registry.clear_cache()
    yield extra
    monkeypatch.undo()
    registry.refresh()
    registry.clear_cache()
    for file in extra.glob("*.py"):
        sys.modules.pop(f"{catalog.__name__}.{file.stem}", None)
        if hasattr(catalog, file.stem):
            delattr(catalog, file.stem)


def add_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


def test_every_dataset_follows_the_registry_convention():
    names = assert_registry_convention("datasets.registry", "DATASETS", lambda spec: isinstance(spec, DatasetSpec))
    assert names == sorted(SHIPPED) and datasets.names() == SHIPPED  # listed by name, served by rank
    assert all(registry.DATASETS.get(name).name == name for name in names)


def test_a_new_dataset_is_one_catalog_file(extra_catalog, tmp_path):
    add_module(extra_catalog, "scriptdigits", SCRIPT_DIGITS)
    assert datasets.names() == [*SHIPPED, "scriptdigits"]  # the default rank lists it after the shipped ones
    assert datasets.info("scriptdigits") == DatasetInfo("scriptdigits", 7, (1, 12, 12), 21, 14)

    root = tmp_path / "data"
    with pytest.raises(UserError) as error:  # nothing on disk, and no torchvision class to download with
        datasets.get(hparams("scriptdigits"), True, root=root, device="cpu", download=True)
    raw = root / "ScriptDigits" / "raw"
    assert str(error.value) == (
        f"scriptdigits not found: looked in {raw} for sd-train-images.idx[.gz], sd-train-labels.idx[.gz]; "
        f"copy the files into {raw}"
    )

    written = {}
    for train, n, gz in ((True, 21, True), (False, 14, False)):
        images = unique_images(n, (12, 12), seed=n)
        labels = (np.arange(n) * 5 % 7).astype(np.uint8)
        prefix = "sd-train" if train else "sd-test"
        write_idx(raw / f"{prefix}-images.idx", images, gz)
        write_idx(raw / f"{prefix}-labels.idx", labels, gz)
        written[train] = torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()

    test = datasets.get(hparams("scriptdigits", batch_size=5), False, root=root, device="cpu")
    assert (test.num_examples, test.num_classes, len(test)) == (14, 7, 3)
    x, y = (torch.cat(parts) for parts in zip(*test.batches(0)))
    assert x.shape == (14, 1, 12, 12) and torch.equal(y, written[False][1])
    by_hand = (written[False][0].double() / 255 - 0.25) / 0.5  # this file's statistics, not MNIST's
    assert torch.allclose(x.double(), by_hand, atol=1e-6)

    train = datasets.get(hparams("scriptdigits", batch_size=21, transformation_seed=2), True, root=root, device="cpu")
    x, y = next(train.batches(0))
    assert torch.equal(y, written[True][1])
    augmented = ((x * 0.5 + 0.25) * 255).round().to(torch.uint8)
    for original, seen in zip(written[True][0], augmented):
        assert (crop_candidates(original, 2) == seen).flatten(1).all(1).any()  # a 2-pixel pad-crop/flip
    moved = sum(not torch.equal(original, seen) for original, seen in zip(written[True][0], augmented))
    assert moved >= 15  # 21 images: all but about 1/50 of them shifted or flipped


def test_two_modules_defining_one_name_are_refused(extra_catalog):
    add_module(extra_catalog, "another_mnist", SCRIPT_DIGITS.replace('NAME = "scriptdigits"', 'NAME = "mnist"'))
    with pytest.raises(RuntimeError, match="two datasets are named 'mnist': datasets.catalog.mnist and "
                                           "datasets.catalog.another_mnist"):
        datasets.names()


def test_modules_without_a_name_and_private_modules_are_not_datasets(extra_catalog):
    add_module(extra_catalog, "helpers", "SPEC = {'name': 'not a DatasetSpec'}\n")
    add_module(extra_catalog, "unnamed", SCRIPT_DIGITS.replace('NAME = "scriptdigits"\n', ""))
    add_module(extra_catalog, "_draft", SCRIPT_DIGITS)
    assert datasets.names() == SHIPPED


@pytest.mark.parametrize("source, error, message", [
    ("NAME = 'oops'\nSUMMARY = 'a dict, not a spec'\nSPEC = {'name': 'oops'}\n", TypeError, "not a DatasetSpec"),
    (SCRIPT_DIGITS.replace("name=NAME", 'name="scripted"'), ValueError, "SPEC.name 'scripted'"),
])
def test_an_entry_whose_spec_does_not_match_its_declaration_is_refused(extra_catalog, source, error, message):
    add_module(extra_catalog, "oops", source)
    with pytest.raises(error, match=message):
        datasets.names()


@pytest.mark.parametrize("change, message", [
    (dict(mean=(0.5, 0.5, 0.5)), "one value per channel"),
    (dict(std=(0.0,)), "std > 0"),
    (dict(input_shape=(28, 28)), "input_shape"),
    (dict(num_train=0), "positive"),
    (dict(pad_crop=0), "pad_crop"),
    (dict(files=ImageFolders("x", "get it"), pad_crop=4), "pad_crop"),
])
def test_an_inconsistent_spec_is_refused_when_it_is_written(change, message):
    fields = dict(name="bad", num_classes=10, input_shape=(1, 28, 28), num_train=10, num_test=10,
                  mean=(0.5,), std=(0.25,), files=IdxFiles("Bad"))
    DatasetSpec(**fields)  # the unchanged fields are consistent
    with pytest.raises(ValueError, match=message):
        DatasetSpec(**{**fields, **change})


def test_shipped_folder_specs_crop_to_their_input_shape():
    image = torch.zeros(3, 300, 280, dtype=torch.uint8)
    for name in ("tinyimagenet", "imagenet"):
        spec = registry.spec(name)
        side = spec.input_shape[1]
        source = image if name == "imagenet" else image[:, :side, :side]
        for augment in (False, True):
            out = spec.files.transform(augment, spec.mean, spec.std)(v2.functional.to_image(source))
            assert tuple(out.shape) == spec.input_shape and out.dtype == torch.float32
