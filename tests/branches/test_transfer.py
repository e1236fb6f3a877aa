"""`branch transfer` (OpenLTH's lottery_branch retrain): a Fashion-MNIST ticket retrained on MNIST,
a ticket from one replicate on another's initialization; the mask is kept bit for bit, the
controls keep its per-layer counts, the source's address is in the hash, misfits are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import datasets.registry
import open_prune
from tests.cli.test_branches import load
from tests.cli.test_train import one_line_error
from tests.conftest import TINY
from tests.tiny_data import write_tiny_mnist

FASHION = [flag.replace("mnist", "fashionmnist") if flag.startswith("--dataset_name") else flag for flag in TINY]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Tiny MNIST and a tiny Fashion-MNIST (other prototypes) side by side."""
    root = write_tiny_mnist(tmp_path_factory.mktemp("data"))
    other = write_tiny_mnist(tmp_path_factory.mktemp("fashion"), seed=7)
    (other / "MNIST").rename(root / "FashionMNIST")
    return root


@pytest.fixture
def run(tmp_path, data, capsys):
    def main(*argv: str, locate: bool = False):
        datasets.registry.clear_cache()
        code = open_prune.main([*argv, f"--root={tmp_path}", f"--dataset_root={data}", "--device=cpu",
                                *(["--display_output_location"] if locate else [])])
        out, err = capsys.readouterr()
        return (Path(out.strip()) if locate and code == 0 else None), code, out, err
    main.root = tmp_path
    return main


def ticket(run, flags, replicate: int = 1) -> tuple[Path, str]:
    """Find an iterative level-1 ticket; its dir and its address under the root."""
    argv = ["branch", "iterative", *flags, "--levels=1", f"--replicate={replicate}"]
    _, code, _, err = run(*argv)
    assert code == 0, err
    level = run(*argv, locate=True)[0] / "level_1"
    return level, str(level.relative_to(run.root))


def transfer(run, *flags) -> tuple[Path, str]:
    _, code, out, err = run("branch", "transfer", *flags)
    assert code == 0, err
    return run("branch", "transfer", *flags, locate=True)[0], out


def test_a_fashion_mnist_ticket_retrained_on_mnist_keeps_its_mask_bit_for_bit(run):
    level, address = ticket(run, FASHION)
    path, out = transfer(run, *TINY, f"--mask_run={address}", "--weights=source")
    source = load(level / "mask.pt")
    kept = load(path / "ticket" / "mask.pt")
    assert kept.keys() == source.keys() and all(torch.equal(kept[k], source[k]) for k in source)
    start, source_start = load(path / "ticket" / "model_ep0_it0.pt"), load(level / "model_ep0_it0.pt")
    assert all(torch.equal(start[k], source_start[k]) for k in source_start)  # OpenLTH's retrain: the rewound weights
    final = load(path / "ticket" / "model_ep3_it0.pt")
    assert all((final[k][~m] == 0).all() for k, m in source.items())  # trained under the mask
    stored = json.loads((path / "hparams.json").read_text())["hparams"]
    assert stored["dataset"]["dataset_name"] == "mnist" and stored["transfer"]["mask_run"] == address
    shuffled = load(path / "random_pruning" / "mask.pt")
    assert all(shuffled[k].sum() == m.sum() for k, m in source.items())  # the same per-layer counts, elsewhere
    assert any(not torch.equal(shuffled[k], m) for k, m in source.items())
    assert torch.equal(load(path / "reinit" / "mask.pt")["fc_layers.0.weight"], source["fc_layers.0.weight"])
    reinit = load(path / "reinit" / "model_ep0_it0.pt")["fc_layers.0.weight"]
    assert not torch.equal(reinit, start["fc_layers.0.weight"])
    assert "ticket" in out and "random_pruning" in out and "reinit" in out
    from reports import tree
    from reports.rundirs import find_runs
    drawn = tree.render(tree.build(find_runs(run.root)))
    line = next(line for line in drawn.splitlines() if path.name in line)
    accuracy = json.loads((path / "ticket" / "done.json").read_text())["metrics"]["test_accuracy"]
    assert f"acc {accuracy:.4f}" in line and f"mask_run={address}" in line and "random_pruning acc" in line


def test_a_ticket_on_another_replicate_s_initialization(run):
    level, address = ticket(run, TINY, replicate=2)
    path, _ = transfer(run, *TINY, f"--mask_run={address}", "--controls=none")  # replicate 1's trunk
    assert sorted(p.name for p in path.iterdir() if p.is_dir()) == ["ticket"]
    init = load(path.parent / "main" / "model_ep0_it0.pt")
    mask = load(level / "mask.pt")
    start = load(path / "ticket" / "model_ep0_it0.pt")
    for name, tensor in init.items():
        assert torch.equal(start[name], tensor * mask[name] if name in mask else tensor)
    other = run("branch", "transfer", *TINY, f"--mask_run={address.replace('level_1', 'level_0')}", locate=True)[0]
    assert other != path  # the source's address (its hash) is in the transfer's hash


@pytest.mark.parametrize("flags, needles", [
    (["--mask_run=branch_iterative_0123456789ab/level_1"], ["no mask.pt"]),
    (["--mask_run=/abs"], ["relative to"]),
    (["--mask_run=x", "--source_step=0ep"], ["--weights=source"]),
    (["--mask_run=x", "--controls=shuffle"], ["random_pruning, reinit"]),
])
def test_bad_input_is_one_line(run, flags, needles):
    _, code, _, err = run("branch", "transfer", *TINY, *flags)
    one_line_error(code, err, *needles)


def test_a_ticket_of_other_shapes_is_one_line(run):
    _, address = ticket(run, TINY)
    wider = [flag.replace("16_8", "32_8") for flag in TINY]
    _, code, _, err = run("branch", "transfer", *wider, f"--mask_run={address}")
    one_line_error(code, err, "another model", "mnist_lenet_32_8")
