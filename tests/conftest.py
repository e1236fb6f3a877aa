"""Shared fixtures for the end-to-end tests: a tiny dataset on disk and a CLI runner."""

from __future__ import annotations

import pytest

import datasets.registry
import open_prune
from tests.tiny_data import write_tiny_mnist

# A LeNet small enough to train in a blink on the tiny dataset: 4 steps per epoch.
TINY = ["--dataset_name=mnist", "--batch_size=64", "--model_name=mnist_lenet_16_8", "--optimizer_name=sgd",
        "--lr=0.1", "--momentum=0.9", "--weight_decay=1e-4", "--training_steps=3ep", "--quiet"]


@pytest.fixture(scope="session")
def dataset_root(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(autouse=True)
def _fresh_dataset_cache():
    datasets.registry.clear_cache()
    yield


@pytest.fixture
def cli(tmp_path, dataset_root, capsys):
    """Run `open_prune.py <argv>` in-process against a fresh root; returns (exit code, stdout, stderr)."""
    root = tmp_path / "runs"

    def run(*argv: str, root_dir=None):
        code = open_prune.main([*argv, f"--root={root_dir or root}", f"--dataset_root={dataset_root}",
                                "--device=cpu"])
        out, err = capsys.readouterr()
        return code, out, err

    run.root = root
    return run
