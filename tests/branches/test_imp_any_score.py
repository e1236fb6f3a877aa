"""IMP with any score (issue 22): the iterative branches rank each level by any registered score and
scope; at the defaults they are the magnitude IMP they always were, hash and masks alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pruning import Mask, ScoringData, prune_in_rounds
from runs.target import branch_target
from tests.cli.test_train import one_line_error
from tests.conftest import TINY

PRUNED = ["fc_layers.0.weight", "fc_layers.1.weight"]  # LeNet's output layer is ignored by IMP's default
PINNED_ITERATIVE = "ddc504bdc44e66e6c89e"  # the default iterative branch's hash before --prune_strategy existed


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def location(cli, *flags) -> Path:
    code, out, err = cli("branch", "iterative", *TINY, *flags, "--display_output_location")
    assert code == 0, err
    return Path(out.strip())


def run(cli, *flags) -> Path:
    code, _, err = cli("branch", "iterative", *TINY, *flags)
    assert code == 0, err
    return location(cli, *flags)


def parsed(cli, dataset_root, *flags):
    branch, _ = branch_target("iterative").parse([*TINY, *flags, f"--root={cli.root}",
                                                  f"--dataset_root={dataset_root}", "--device=cpu"])
    return branch


def previous(branch, path: Path, level: int) -> tuple[torch.nn.Module, Mask]:
    """Level `level - 1`'s final weights and mask (level 0: the trunk, dense)."""
    directory = branch.trunk.dir if level == 1 else path / f"level_{level - 1}"
    model = branch.trunk.fresh_model()
    model.load_state_dict(load(directory / "model_ep3_it0.pt"))
    return model, Mask(load(path / f"level_{level - 1}" / "mask.pt"))


def test_the_defaults_keep_the_hash_and_prune_by_global_trained_magnitude(cli, dataset_root):
    path = run(cli, "--levels=2")
    assert path.name == "branch_iterative_" + PINNED_ITERATIVE
    assert location(cli, "--levels=2", "--prune_strategy=Magnitude", "--prune_scope=global") == path
    branch = parsed(cli, dataset_root, "--levels=2")
    for level in (1, 2):  # by hand: the round(0.2 * alive) smallest alive |w| over both layers, ties to the lower index
        model, before = previous(branch, path, level)
        state = model.state_dict()
        alive = torch.cat([before[name].reshape(-1) for name in PRUNED])
        values = torch.cat([state[name].abs().reshape(-1) for name in PRUNED])
        candidates = alive.nonzero().squeeze(1)
        order = torch.sort(values[candidates], stable=True).indices
        kept = alive.clone()
        kept[candidates[order[:round(0.2 * candidates.numel())]]] = False
        mask = load(path / f"level_{level}" / "mask.pt")
        assert torch.equal(torch.cat([mask[name].reshape(-1) for name in PRUNED]), kept)
        assert mask["fc.weight"].all()


@pytest.mark.parametrize("flags", [["--prune_strategy=snip10"], ["--prune_strategy=SNIP2", "--prune_scope=lamp"],
                                   ["--prune_strategy=synflow", "--prune_scope=erk"]])
def test_each_level_is_prune_in_rounds_of_the_score_on_the_previous_level(cli, dataset_root, flags):
    path = run(cli, "--levels=2", *flags)
    assert path != location(cli, "--levels=2")  # a new run, not the magnitude one
    branch = parsed(cli, dataset_root, "--levels=2", *flags)
    h, trunk = branch.bundles["imp"], branch.trunk
    for level in (1, 2):
        model, before = previous(branch, path, level)
        data = ScoringData(examples=trunk.loader(True), seed=branch.seed() + level, input_shape=(1, 28, 28),
                           batch_size=64, weight_decay=1e-4)
        expected = prune_in_rounds(model, h.prune_strategy, 0.2, 1, data=data, mask=before, scope=h.prune_scope,
                                   layers_to_ignore=["fc.weight"])
        assert Mask(load(path / f"level_{level}" / "mask.pt")) == expected
        alive = sum(int(before[name].sum()) for name in PRUNED)
        kept = sum(int(expected[name].sum()) for name in PRUNED)
        slack = len(PRUNED) if h.prune_scope == "erk" else 0  # erk rounds each layer's count
        assert abs(kept - (alive - round(0.2 * alive))) <= slack


@pytest.mark.parametrize("flags, needles", [
    (["--prune_strategy=snap"], ["unknown pruning strategy", "snip"]),
    (["--prune_strategy=snip"], ["snip10"]),
    (["--prune_structure=neurons", "--prune_strategy=snip2"], ["--prune_structure=neurons", "--unit_norm"]),
    (["--prune_scope=owlish"], ["invalid choice"]),
])
def test_bad_scores_are_one_line(cli, flags, needles):
    code, _, err = cli("branch", "iterative", *TINY, "--levels=1", *flags)
    one_line_error(code, err, *needles)
    assert not any(cli.root.rglob("done.json"))
