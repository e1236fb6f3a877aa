"""`tinyimagenet2`, the "Missing the Mark" fork's second Tiny ImageNet, on a tiny folder tree of
real PNG and JPEG files: the fork's fixed normalization by hand, its validation labels, its
pad-crop/flip augmentation, and the modified ResNet-18 training on it end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import datasets
import open_prune
from datasets.seeds import epoch_order
from foundations.errors import UserError
from tests.datasets.test_folder import crop_candidates, hparams, write_tiny
from tests.datasets.test_loaders import run_epoch

FORK_MEAN = torch.tensor([-0.021, -0.0354, -0.0376]).view(1, 3, 1, 1)  # the fork's datasets/tinyimagenet.py
FORK_STD = torch.tensor([1.21, 1.20, 1.25]).view(1, 3, 1, 1)


def fork_normalized(images: torch.Tensor) -> torch.Tensor:
    """ToTensor then Normalize(mean, std), written out: (pixels / 255 - mean) / std."""
    return (images.float() / 255 - FORK_MEAN) / FORK_STD


def test_facts_are_tiny_imagenet_s_but_the_normalization_is_the_fork_s():
    info, spec = datasets.info("tinyimagenet2"), datasets.registry.spec("tinyimagenet2")
    assert (info.num_classes, info.input_shape, info.num_train, info.num_test) == (200, (3, 64, 64), 100000, 10000)
    assert spec.files.directory == datasets.registry.spec("tinyimagenet").files.directory  # the same files
    assert spec.mean == (-0.021, -0.0354, -0.0376) and spec.std == (1.21, 1.20, 1.25)


def test_training_images_are_the_fork_s_normalized_pixels_in_dataset_order(tmp_path):
    images, labels = write_tiny(tmp_path)  # PNG: exact pixels
    loader = datasets.get(hparams("tinyimagenet2", batch_size=5, do_not_augment=True), True, root=tmp_path,
                          device="cpu")
    x, y = run_epoch(loader)  # no order seed: dataset order
    assert torch.allclose(x, fork_normalized(images), atol=1e-6) and torch.equal(y, labels)
    plain = datasets.get(hparams("tinyimagenet", batch_size=5, do_not_augment=True), True, root=tmp_path, device="cpu")
    assert not torch.allclose(run_epoch(plain)[0], x, atol=1e-2)  # the first layout normalizes otherwise


def test_validation_labels_come_from_the_annotations_file(tmp_path):
    write_tiny(tmp_path)  # val/images/val_<i>.JPEG, flat colours; classes by sorted wnid
    loader = datasets.get(hparams("tinyimagenet2", batch_size=2), False, root=tmp_path, device="cpu")
    x, y = run_epoch(loader)
    assert y.tolist() == [2, 0, 2, 1, 0]
    expected = torch.tensor([[40 * i, 255 - 30 * i, 100] for i in range(5)], dtype=torch.float32)
    centre = (x[:, :, 32, 32] * FORK_STD.view(1, 3) + FORK_MEAN.view(1, 3)) * 255
    assert (centre - expected).abs().max() <= 2.5  # JPEG at quality 100


def test_augmentation_is_a_4_pixel_pad_crop_and_flip(tmp_path):
    images, _ = write_tiny(tmp_path)
    loader = datasets.get(hparams("tinyimagenet2", batch_size=4, transformation_seed=4), True, root=tmp_path,
                          device="cpu")
    x, _ = run_epoch(loader, 0, order_seed=2)
    augmented = ((x * FORK_STD + FORK_MEAN) * 255).round().clamp(0, 255).to(torch.uint8)
    moved = 0
    for position, index in enumerate(epoch_order(12, 2, 0).tolist()):
        candidates = crop_candidates(images[index], 4)
        assert (candidates == augmented[position]).flatten(1).all(1).any(), f"example {index} is not a pad-crop/flip"
        moved += not torch.equal(augmented[position], images[index])
    assert moved >= 9


def test_the_modified_resnet_18_trains_on_it_end_to_end(tmp_path, capsys):
    write_tiny(tmp_path / "data", per_class=2)
    argv = ["train", "--dataset_name=tinyimagenet2", "--batch_size=3", "--model_name=tinyimagenet_modifiedresnet_18_4",
            "--optimizer_name=sgd", "--lr=0.01", "--training_steps=2it", "--quiet", f"--root={tmp_path / 'runs'}",
            f"--dataset_root={tmp_path / 'data'}", "--device=cpu", "--num_threads=1"]
    assert open_prune.main(argv) == 0
    done = next((tmp_path / "runs").glob("train_*/replicate_*/main/done.json"))
    assert json.loads(done.read_text())["final_step"] == "1ep0it"  # 6 images in batches of 3
    stored = json.loads((done.parent / "hparams.json").read_text())
    assert stored["hparams"]["dataset"]["dataset_name"] == "tinyimagenet2"


def test_missing_files_name_the_directory(tmp_path):
    with pytest.raises(UserError, match=str(Path(tmp_path) / "tiny-imagenet-200" / "train")):
        datasets.get(hparams("tinyimagenet2"), True, root=tmp_path, device="cpu")
