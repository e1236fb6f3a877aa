"""The branches' defaults against the code that produced their papers' numbers, pinned hashes,
and lottery studies that grow by adding levels."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.cli.test_branches import ALL_WEIGHTS, branch, counts, load, location
from tests.conftest import TINY

# Pinned: these name run directories on users' disks. The iterative hash changed once, on purpose,
# when --levels left the hash (more levels continue the same branch).
FIXED_ITERATIVE_HASH = "ddc504bdc44e66e6c89e"


def total_kept(path: Path, names=ALL_WEIGHTS) -> tuple[int, int]:
    layers = counts(path)
    return sum(layers[n]["unpruned"] for n in names), sum(layers[n]["total"] for n in names)


def test_oneshot_ranks_every_weight_as_the_fork_does(cli):
    """99% with magnitude keeps exactly 1% of all conv/linear weights, the output layer competing
    too, and what is kept is the globally largest |w| (the fork's rule on a known network)."""
    path = branch(cli, "oneshot", "--strategy=magnitude", "--prune_fraction=0.99")
    kept, total = total_kept(path)
    assert kept == total - round(0.99 * total)
    init, mask = load(location(cli, "train", *TINY) / "model_ep0_it0.pt"), load(path / "mask.pt")
    magnitudes = torch.cat([init[n].abs().flatten() for n in ALL_WEIGHTS])
    threshold = magnitudes.sort(descending=True).values[kept - 1]
    for n in ALL_WEIGHTS:
        assert torch.equal(mask[n], init[n].abs() >= threshold)


def test_imp_keeps_openlths_default_of_leaving_lenets_output_layer_alone(cli):
    path = branch(cli, "iterative", "--levels=1")
    layers = counts(path / "level_1")
    assert layers["fc.weight"]["unpruned"] == layers["fc.weight"]["total"]
    kept, total = total_kept(path / "level_1", names=["fc_layers.0.weight", "fc_layers.1.weight"])
    assert kept == total - round(0.2 * total)


def test_more_levels_continue_the_same_branch_and_fewer_report_the_first(cli):
    first = branch(cli, "iterative", "--levels=1")
    level_1 = {p.name: p.stat().st_mtime_ns for p in (first / "level_1").iterdir()}
    longer = branch(cli, "iterative", "--levels=2")
    assert longer == first and (first / "level_2" / "done.json").exists()
    assert {p.name: p.stat().st_mtime_ns for p in (first / "level_1").iterdir()} == level_1  # not retrained
    code, out, _ = cli("branch", "iterative", *TINY, "--levels=1")
    assert code == 0 and "level_2" not in out and "level_1" in out
    assert "levels" not in json.loads((first / "hparams.json").read_text())["hparams"]["imp"]


def test_the_iterative_hash_is_pinned_and_ignores_levels(cli):
    one = location(cli, "branch", "iterative", *TINY, "--levels=1")
    ten = location(cli, "branch", "iterative", *TINY, "--levels=10")
    assert one == ten and one.name == "branch_iterative_" + FIXED_ITERATIVE_HASH
