"""The branches' defaults against the code that produced their papers' numbers, pinned hashes,
and lottery studies that grow by adding levels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


# ---- oneshot's --start_step: 0ep0it by default, as in the fork ------------------------------------
# TINY has 4 iterations per epoch and 3 epochs; the schedule below is lr 0.1, x0.1 from 2ep (iteration 8).

SCHEDULE = ["--milestone_steps=2ep", "--gamma=0.1"]
LATE = ["--strategy=magnitude", "--prune_fraction=0.5", "--state_step=1ep", *SCHEDULE]
# Pinned: the oneshot run above (state 1ep, start unset). Its unset --start_step meant the state
# step before the fork's default; now it is stored as 0ep0it, so these runs changed hash.
FIXED_LATE_ONESHOT_HASH = "50ed83bcbc4308e844ed"


def metric(directory: Path, name: str) -> list[tuple[int, float]]:
    records = map(json.loads, (directory / "metrics.jsonl").read_text().splitlines())
    return [(r["iteration"], r["value"]) for r in records if r["name"] == name]


def first_step_by_hand(cli, dataset_root, start: torch.Tensor, mask: dict, epoch: int, lr: float) -> dict:
    """One SGD step (momentum 0.9: its first step is plain; weight decay 1e-4) of the masked
    weights `start` on the first batch of `epoch` in the trunk's data order, pruned weights kept 0."""
    from runs.target import branch_target
    argv = [*TINY, *LATE, f"--root={cli.root}", f"--dataset_root={dataset_root}", "--device=cpu"]
    trunk = branch_target("oneshot").parse(argv)[0].trunk
    x, y = next(trunk.loader(True).batches(epoch, start=0, order_seed=trunk.seeds["data_order"]))
    model = trunk.fresh_model()
    model.load_state_dict(start)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    stepped = {}
    for (name, weight), grad in zip(model.named_parameters(), grads):
        new = weight.detach() - lr * (grad + 1e-4 * weight.detach())
        stepped[name] = new * mask[name] if name in mask else new
    return stepped


def test_oneshot_restarts_the_schedule_and_data_order_at_0_by_default_as_the_fork(cli, dataset_root):
    """--state_step=1ep, no --start_step: the branch trains the 1ep weights for the whole schedule
    (12 iterations, evaluated at 0, 4, 8, 12; lr 0.1 until 2ep, then 0.01), and its first step uses the
    first batch of epoch 0, computed here by hand."""
    path = branch(cli, "oneshot", *LATE, "--weight_save_steps=1it")
    assert path.name == "branch_oneshot_" + FIXED_LATE_ONESHOT_HASH
    assert json.loads((path / "hparams.json").read_text())["hparams"]["oneshot"]["start_step"] == "0ep0it"
    assert [i for i, _ in metric(path, "test_accuracy")] == [0, 4, 8, 12]
    assert [v for _, v in metric(path, "lr")] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    mask, at_1ep = load(path / "mask.pt"), load(location(cli, "train", *TINY, *SCHEDULE) / "model_ep1_it0.pt")
    start = load(path / "model_ep0_it0.pt")
    assert all(torch.equal(start[n], at_1ep[n] * mask[n]) for n in mask)
    after = load(path / "model_ep0_it1.pt")
    by_hand = first_step_by_hand(cli, dataset_root, start, mask, epoch=0, lr=0.1)
    assert all(torch.allclose(after[n], by_hand[n], atol=1e-6) for n in by_hand)
    elsewhere = first_step_by_hand(cli, dataset_root, start, mask, epoch=1, lr=0.1)  # the state's own epoch
    assert not all(torch.allclose(after[n], elsewhere[n], atol=1e-6) for n in elsewhere)


def test_oneshot_start_step_state_continues_the_trunks_schedule_and_data_order(cli):
    """--start_step=state: evaluated at 4, 8, 12 with lr 0.1, 0.01, 0.01; unpruned (fraction 0) and
    without momentum (a branch starts a fresh optimizer, as the fork's does), it is the rest of the
    trunk's own training, so it ends bitwise on the trunk's final weights."""
    path = branch(cli, "oneshot", *LATE, "--start_step=state")
    assert [i for i, _ in metric(path, "test_accuracy")] == [4, 8, 12]
    assert [v for _, v in metric(path, "lr")] == pytest.approx([0.1, 0.01, 0.01])
    whole = branch(cli, "oneshot", *LATE, "--start_step=state", "--prune_fraction=0", "--momentum=0")
    final = load(location(cli, "train", *TINY, *SCHEDULE, "--momentum=0") / "model_ep3_it0.pt")
    ended = load(whole / "model_ep3_it0.pt")
    assert all(torch.equal(ended[n], final[n]) for n in final)


def test_oneshot_start_step_spellings_name_one_run(cli):
    at_init = ["--strategy=magnitude", "--prune_fraction=0.5"]
    init = location(cli, "branch", "oneshot", *TINY, *at_init)
    for same in ("--start_step=0ep0it", "--start_step=0it", "--start_step=state", "--start_step=State"):
        assert location(cli, "branch", "oneshot", *TINY, *at_init, same) == init  # at init: all one run
    late = location(cli, "branch", "oneshot", *TINY, *LATE)
    assert late.name == "branch_oneshot_" + FIXED_LATE_ONESHOT_HASH
    for same in ("--start_step=0ep", "--start_step=0ep0it", "--start_step=0it"):
        assert location(cli, "branch", "oneshot", *TINY, *LATE, same) == late
    assert location(cli, "branch", "oneshot", *TINY, *LATE, "--start_step=state") != late


def test_oneshot_start_step_that_is_not_a_step_is_one_line(cli):
    code, out, err = cli("branch", "oneshot", *TINY, *LATE, "--start_step=half")
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "'state'" in err and "--start_step='half'" in err
