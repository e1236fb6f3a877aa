"""`branch spam-online` end to end: the staircase hit exactly, persistent vs dynamic masks, the
trajectory and final table, a bitwise resume after a kill, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import branches.spam.prior_training as spam_training
from branches.spam.online_pruning import OnlineHparams, OnlineSpamHparams, prunes_at, scheduled_sparsity
from branches.spam.prior_training import SpamHparams
from foundations.errors import UserError
from tests.cli.test_branches import load, location
from tests.cli.test_train import Kill, one_line_error
from tests.conftest import TINY

# events at every epoch end (4, 8, 12): s = 0.2 + 0.6 * e / 3 -> 0.4, 0.6, 0.8
ONLINE = [*TINY, "--marglik_frequency=1", "--hyper_steps=10", "--prune_interval=1", "--initial_sparsity=0.2",
          "--final_sparsity=0.8", "--eval_every=2it"]
CONSIDERED = 784 * 16 + 16 * 8 + 8 * 10  # every weight of lenet_16_8, the output layer's too


def series(path: Path, name: str) -> dict[int, float]:
    return {r["iteration"]: r["value"] for r in map(json.loads, (path / "metrics.jsonl").read_text().splitlines())
            if r["name"] == name}


def test_the_staircase_by_hand():
    # the paper's defaults: s0 0.1, s_final 0.99, every 10 of 100 epochs
    assert [scheduled_sparsity(e, 100, 0.1, 0.99, 10) for e in (5, 10, 19, 50, 100, 120)] == pytest.approx(
        [0.1, 0.189, 0.189, 0.545, 0.99, 0.99])
    with pytest.raises(UserError, match="longer than training"):
        scheduled_sparsity(1, 3, 0.1, 0.9, 4)


def test_the_authors_cadence_by_hand():
    # 100 epochs, an update every 5, the staircase every 10: the updates at 10, 20, ..., 100 prune
    updates = range(5, 101, 5)
    assert [e for e in updates if prunes_at(e, 100, 10, every_update=False)] == list(range(10, 101, 10))
    assert [e for e in updates if prunes_at(e, 100, 10, every_update=True)] == list(updates)
    assert prunes_at(9, 10, 4, every_update=False)  # the authors also prune after epoch E - 1
    # the defaults are the authors': regrowth, pruning between the fit and the Adam steps, the GGN
    online = OnlineHparams()
    assert (online.dynamic_mask, online.prune_before_update, online.prune_every_update) == (True, True, False)
    assert OnlineSpamHparams().curvature == "diag_ggn" and SpamHparams().curvature == "diag_ef"


@pytest.mark.parametrize("every, targets", [
    (False, {8: 0.8}),  # updates after epochs 1, 2, 3; only epoch 2 (a multiple of 2 and E - 1) prunes
    (True, {4: 0.2, 8: 0.8, 12: 0.8}),  # s(1) = s0, s(2) = s(3) = s_final: one interval in 3 epochs
])
def test_online_pruning_prunes_at_the_interval_or_at_every_update(cli, every, targets):
    argv = [*ONLINE, "--prune_interval=2", *(["--prune_every_update"] if every else [])]
    assert cli("branch", "spam-online", *argv)[0] == 0
    path = location(cli, "branch", "spam-online", *argv)
    assert series(path, "target_sparsity") == pytest.approx(targets)


@pytest.mark.parametrize("flag", [None, "--dynamic_mask=false", "--prune_before_update=false"])
def test_online_pruning_hits_the_schedule_and_keeps_or_regrows(cli, flag):
    dynamic = flag != "--dynamic_mask=false"
    argv = [*ONLINE, *([flag] if flag else [])]
    code, out, err = cli("branch", "spam-online", *argv)
    assert code == 0, err
    path = location(cli, "branch", "spam-online", *argv)
    targets = series(path, "target_sparsity")
    assert targets == pytest.approx({4: 0.4, 8: 0.6, 12: 0.8})
    pruned = series(path, "pruned_sparsity")
    assert pruned == {it: round(s * CONSIDERED) / CONSIDERED for it, s in targets.items()}  # exactly
    sparsity = series(path, "sparsity")  # at every evaluation (every 2 steps)
    if dynamic:
        assert sparsity[6] < pruned[4] and sparsity[10] < pruned[8]  # pruned weights regrew between events
    else:
        assert sparsity[6] == pruned[4] and sparsity[10] == pruned[8]  # they stayed at zero
    mask, final = load(path / "mask.pt"), load(path / "model_ep3_it0.pt")
    assert sum(int(m.sum()) for m in mask.values()) == CONSIDERED - round(0.8 * CONSIDERED)
    assert all((final[n][~mask[n]] == 0).all() for n in mask)
    posterior = load(path / "posterior_precision.pt")
    if not dynamic:  # pruned weights are out of the posterior
        assert all((posterior[n][~mask[n]] == 0).all() for n in mask)
    rows = list(csv.reader((path / "trajectory.csv").open()))
    assert rows[0] == ["epoch", "sparsity", "test accuracy"] and len(rows) == 1 + 7
    table = list(csv.reader((path / "table.csv").open()))
    assert table[0] == ["sparsity %", "spam-online/opd", "map/opd", "map/magnitude", "map/random"]
    assert table[2][0] == "80"
    cells = {c["model"]: c for c in json.loads((path / "table.json").read_text())["cells"]
             if c.get("criterion") == "opd" and c["sparsity"] == 80}
    headline = json.loads((path / "branch_done.json").read_text())["headline"]  # what `runs` and `tree` show
    assert headline == [["sparsity %", 80], ["spam-online accuracy", cells["spam-online"]["accuracy"]],
                        ["map opd accuracy", cells["map"]["accuracy"]]]
    assert "spam-online" in out and "trajectory.csv" in out


def test_a_killed_online_run_resumes_bitwise(cli, tmp_path, monkeypatch):
    assert cli("branch", "spam-online", *ONLINE)[0] == 0
    whole = location(cli, "branch", "spam-online", *ONLINE)
    real_train = spam_training.train

    def killed(*args, **kwargs):
        return real_train(*args, **{**kwargs, "hooks": [*kwargs["hooks"], Kill(6)]})

    monkeypatch.setattr(spam_training, "train", killed)
    root = tmp_path / "killed"
    assert cli("branch", "spam-online", *ONLINE, root_dir=root)[0] == 130
    monkeypatch.setattr(spam_training, "train", real_train)
    assert cli("branch", "spam-online", *ONLINE, root_dir=root)[0] == 0
    resumed = next(root.rglob("branch_spam-online_*"))
    for name in ("model_ep3_it0.pt", "mask.pt", "prior_precision.pt"):
        a, b = load(whole / name), load(resumed / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (whole / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()
    stamp = (resumed / "table.csv").stat().st_mtime_ns
    assert cli("branch", "spam-online", *ONLINE, root_dir=root)[0] == 0  # a rerun skips
    assert (resumed / "table.csv").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("flags, needles", [
    (["--prune_interval=4"], ["prune_interval=4", "longer than training"]),
    (["--final_sparsity=1.0"], ["final_sparsity", "[0, 1)"]),
    (["--initial_sparsity=0.5", "--final_sparsity=0.2"], ["initial_sparsity", "only goes up"]),
    (["--criterion=magnitude"], ["invalid choice", "post_only"]),
    (["--marglik_frequency=0"], ["marglik_frequency"]),
])
def test_bad_online_flags_are_one_clear_line(cli, flags, needles):
    code, _, err = cli("branch", "spam-online", *TINY, *flags)
    one_line_error(code, err, *needles)
    assert not any(cli.root.rglob("done.json"))
