"""runs/parent_run.py: a branch's parent run addressed by its hashed path, in the trunk's replicate
directory or anywhere under the root; its mask and weights loaded exactly, foreign ones refused."""

from __future__ import annotations

import json

import pytest
import torch

from foundations.errors import UserError
from foundations.step import Step
from pruning.mask import Mask
from runs import parent_run
from runs.target import train_target
from tests.cli.test_branches import load, location
from tests.conftest import TINY


def trunk_of(cli, dataset_root, *flags):
    run, _ = train_target().parse([*TINY, *flags, f"--root={cli.root}", f"--dataset_root={dataset_root}",
                                   "--device=cpu"])
    return run


@pytest.mark.parametrize("text, expected", [
    ("branch_iterative_0123456789ab/level_1/", "branch_iterative_0123456789ab/level_1"),
    ("./branch_iterative_0123456789ab//level_1", "branch_iterative_0123456789ab/level_1"),
    (" train_0123456789ab/replicate_2/main ", "train_0123456789ab/replicate_2/main"),
])
def test_an_address_is_written_one_way(text, expected):
    assert parent_run.normalized_address(text, "mask_run") == expected


@pytest.mark.parametrize("text", ["/abs/level_1", "", ".", "../train_0123456789ab/replicate_1/main"])
def test_an_address_outside_the_root_is_one_line(text):
    with pytest.raises(UserError, match="--mask_run=.*relative to the trunk's replicate directory"):
        parent_run.normalized_address(text, "mask_run")


def test_a_parent_s_mask_and_weights_load_exactly_from_either_address(cli, dataset_root):
    code, _, err = cli("branch", "iterative", *TINY, "--levels=1")
    assert code == 0, err
    level = location(cli, "branch", "iterative", *TINY, "--levels=1") / "level_1"
    trunk = trunk_of(cli, dataset_root)
    other = trunk_of(cli, dataset_root, "--replicate=2", "--lr=0.05")  # another trunk and replicate
    local, rooted = f"{level.parent.name}/level_1", str(level.relative_to(cli.root))
    assert parent_run.parent_dir(trunk, local) == parent_run.parent_dir(other, rooted) == level
    assert parent_run.replicate_of(other, rooted) == 1 and parent_run.replicate_of(other, local) == 2
    saved = load(level / "mask.pt")
    for who, address in ((trunk, local), (other, rooted)):
        mask = parent_run.load_mask(who, address, "mask_run")
        assert mask.keys() == list(saved) and all(torch.equal(mask[k], saved[k]) for k in saved)  # bit for bit
    end = parent_run.parent_step(other, rooted, "end", "step")
    assert end == Step(12, 4) and parent_run.parent_step(other, rooted, "1ep", "step") == Step(4, 4)
    model = parent_run.load_weights(other, rooted, end, "step")
    final = load(level / "model_ep3_it0.pt")
    assert all(torch.equal(model.state_dict()[k], final[k]) for k in final)
    with pytest.raises(UserError, match="saved no weights at that step; it has model_ep0_it0.pt, model_ep3_it0.pt"):
        parent_run.load_weights(other, rooted, Step(5, 4), "step")


def test_a_mask_of_other_shapes_is_one_line(cli, dataset_root):
    trunk = trunk_of(cli, dataset_root)
    replicate = trunk.dir.parent
    Mask({"fc_layers.0.weight": torch.ones(8, 784, dtype=torch.bool)}).save(replicate / "narrow")
    with pytest.raises(UserError, match=r"another model \(fc_layers.0.weight \(8, 784\) do not fit mnist_lenet_16_8"):
        parent_run.load_mask(trunk, "narrow", "mask_run")
    with pytest.raises(UserError, match="holds no mask.pt"):
        parent_run.load_mask(trunk, "branch_iterative_0123456789ab/level_1", "mask_run")


def test_pruning_a_parent_further_keeps_its_pruned_weights_pruned(cli, dataset_root):
    """What a branch of a branch does with the mechanism (oneshot's --parent_run): score the
    parent's trained weights under its mask and remove a fraction of what it keeps."""
    from pruning import prune_in_rounds
    code, _, err = cli("branch", "iterative", *TINY, "--levels=1")
    assert code == 0, err
    level = location(cli, "branch", "iterative", *TINY, "--levels=1") / "level_1"
    trunk = trunk_of(cli, dataset_root)
    address = f"{level.parent.name}/level_1"
    parent_mask = parent_run.load_mask(trunk, address, "parent_run")
    weights = parent_run.load_weights(trunk, address, parent_run.parent_step(trunk, address, "end", "s"), "s")
    child = prune_in_rounds(weights, "magnitude", 0.5, mask=parent_mask)
    assert all(not (child[k] & ~parent_mask[k]).any() for k in parent_mask)  # nothing pruned comes back
    assert child.num_unpruned == round(parent_mask.num_unpruned * 0.5)
    survivors = torch.cat([weights.state_dict()[k][child[k]].abs() for k in child])
    removed = torch.cat([weights.state_dict()[k][parent_mask[k] & ~child[k]].abs() for k in child])
    assert removed.max() <= survivors.min()  # the smallest of the parent's survivors went


@pytest.mark.parametrize("strategy", ["magnitude", "wanda"])
def test_oneshot_prunes_a_parent_run_further_through_the_cli(cli, dataset_root, strategy):
    """oneshot --parent_run: the child's mask is inside the parent's, keeps half of what the
    parent keeps in the considered layers, and trains from the parent's weights."""
    assert cli("branch", "iterative", *TINY, "--levels=1")[0] == 0
    level = location(cli, "branch", "iterative", *TINY, "--levels=1") / "level_1"
    address = f"{level.parent.name}/level_1"
    scope = "--prune_scope=layerwise" if strategy == "wanda" else "--prune_scope=global"
    flags = [*TINY, f"--parent_run={address}", f"--strategy={strategy}", "--prune_fraction=0.5", scope,
             "--prune_layers_to_ignore=fc.weight", "--prune_step=3ep", "--state_step=3ep"]
    code, _, err = cli("branch", "oneshot", *flags)
    assert code == 0, err
    child = load(location(cli, "branch", "oneshot", *flags) / "mask.pt")
    parent = load(level / "mask.pt")
    assert all(not (child[k] & ~parent[k]).any() for k in parent)
    considered = [k for k in parent if k != "fc.weight"]
    alive = {k: int(parent[k].sum()) for k in considered}
    kept = {k: int(child[k].sum()) for k in considered}
    if strategy == "wanda":  # per layer, the paper's uniform sparsity
        assert kept == {k: n - round(0.5 * n) for k, n in alive.items()}
    else:  # one global ranking
        assert sum(kept.values()) == sum(alive.values()) - round(0.5 * sum(alive.values()))
    hparams = json.loads((location(cli, "branch", "oneshot", *flags) / "hparams.json").read_text())
    assert hparams["hparams"]["oneshot"]["parent_run"] == address  # in the hash: another parent is another run


def test_instability_takes_a_parent_of_another_replicate_under_the_root(cli):
    code, _, err = cli("branch", "iterative", *TINY, "--levels=1", "--replicate=2")
    assert code == 0, err
    level = location(cli, "branch", "iterative", *TINY, "--levels=1", "--replicate=2") / "level_1"
    address = str(level.relative_to(cli.root))
    flags = ["--from_step=0ep", f"--mask_run={address}", "--controls=none", "--points=2"]
    code, _, err = cli("branch", "instability", *TINY, *flags)  # replicate 1's trunk, replicate 2's ticket
    assert code == 0, err
    path = location(cli, "branch", "instability", *TINY, *flags)
    assert path.parent.name == "replicate_1"
    kept, source = load(path / "copy_a" / "mask.pt"), load(level / "mask.pt")
    assert all(torch.equal(kept[k], source[k]) for k in source)
    stored = json.loads((path / "hparams.json").read_text())["hparams"]["instability"]
    assert stored["mask_run"] == address  # the parent's hashed directories are in the child's hash
