"""Every branch end to end through the CLI on a tiny LeNet, each result checked against an oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.cli.test_train import Kill, one_line_error
from tests.conftest import TINY

PRUNED = ["fc_layers.0.weight", "fc_layers.1.weight"]  # fc.weight is LeNet's default layer to ignore in IMP
ALL_WEIGHTS = [*PRUNED, "fc.weight"]  # oneshot ranks every conv and linear weight by default (the fork's rule)


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def location(cli, *argv) -> Path:
    code, out, err = cli(*argv, "--display_output_location")
    assert code == 0, err
    return Path(out.strip())


def branch(cli, name, *flags) -> Path:
    code, out, err = cli("branch", name, *TINY, *flags)
    assert code == 0, err
    assert "density" in out and "test accuracy" in out  # the closing table
    return location(cli, "branch", name, *TINY, *flags)


def trunk_dir(cli) -> Path:
    return location(cli, "train", *TINY)


def counts(directory: Path) -> dict:
    return json.loads((directory / "sparsity.json").read_text())["layers"]


def test_branch_lists_the_branches(cli):
    code, out, _ = cli("branch")
    for name in ("oneshot", "iterative", "rewinding", "reinitialize"):
        assert f"  {name}" in out


def test_iterative_prunes_20_percent_of_survivors_by_trained_magnitude_and_rewinds_to_init(cli):
    path = branch(cli, "iterative", "--levels=2")
    trunk = trunk_dir(cli)
    assert path.parent == trunk.parent and path.name.startswith("branch_iterative_")
    init, trunk_final = load(trunk / "model_ep0_it0.pt"), load(trunk / "model_ep3_it0.pt")
    expected = {name: init[name].numel() for name in PRUNED}
    for level in (1, 2):
        level_dir = path / f"level_{level}"
        layers = counts(level_dir)
        total = sum(expected.values())
        assert sum(layers[n]["unpruned"] for n in PRUNED) == round(0.8 * total)  # global: 20% of survivors
        expected_total = round(0.8 * total)
        assert layers["fc.weight"]["unpruned"] == layers["fc.weight"]["total"]  # ignored layer untouched
        mask = load(level_dir / "mask.pt")
        start, final = load(level_dir / "model_ep0_it0.pt"), load(level_dir / "model_ep3_it0.pt")
        for name in mask:
            assert torch.equal(start[name], init[name] * mask[name])  # rewound to init, masked
            assert (final[name][~mask[name]] == 0.0).all()  # pruned weights stayed exactly zero
        assert torch.equal(start["fc_layers.0.bias"], init["fc_layers.0.bias"])
        expected = {n: layers[n]["unpruned"] for n in PRUNED}
        assert sum(expected.values()) == expected_total
    # level 1 keeps the largest trained magnitudes of the trunk (global ranking)
    mask = load(path / "level_1" / "mask.pt")
    kept = torch.cat([trunk_final[n].abs()[mask[n]] for n in PRUNED])
    dropped = torch.cat([trunk_final[n].abs()[~mask[n]] for n in PRUNED])
    assert kept.min() >= dropped.max()
    # density after L levels is 0.8^L of the prunable weights (up to rounding)
    level2 = counts(path / "level_2")
    density = sum(level2[n]["unpruned"] for n in PRUNED) / sum(level2[n]["total"] for n in PRUNED)
    assert density == pytest.approx(0.8 ** 2, abs=1e-3)


def test_a_finished_branch_reruns_as_a_skip_with_the_same_table(cli):
    first = cli("branch", "iterative", *TINY, "--levels=1")[1]
    path = location(cli, "branch", "iterative", *TINY, "--levels=1")
    stamp = (path / "level_1" / "done.json").stat().st_mtime_ns
    assert cli("branch", "iterative", *TINY, "--levels=1")[1] == first
    assert (path / "level_1" / "done.json").stat().st_mtime_ns == stamp


def test_structured_iterative_pruning_zeroes_whole_neurons(cli):
    path = branch(cli, "iterative", "--levels=1", "--prune_structure=neurons", "--pruning_fraction=0.25")
    mask = load(path / "level_1" / "mask.pt")
    rows = mask["fc_layers.0.weight"]
    alive = rows.any(dim=1)
    assert (rows[alive].all(dim=1)).all()  # a unit is kept whole or removed whole
    assert int((~alive).sum()) == 4  # 25% of 16 neurons


def test_rewinding_to_an_unsaved_step_reproduces_the_trunk_exactly(cli, tmp_path):
    path = branch(cli, "rewinding", "--levels=1", "--rewind_step=1ep2it")
    trunk = trunk_dir(cli)
    assert (trunk / "model_ep1_it2.pt").exists()  # reproduced and saved in the trunk
    # oracle: a trunk that saved that step while training
    code, _, _ = cli("train", *TINY, "--weight_save_steps=1ep2it", root_dir=tmp_path / "saved")
    saved = load(next((tmp_path / "saved").rglob("model_ep1_it2.pt")))
    reproduced = load(trunk / "model_ep1_it2.pt")
    assert all(torch.equal(saved[k], reproduced[k]) for k in saved)
    level = path / "level_1"
    mask, start = load(level / "mask.pt"), load(level / "model_ep1_it2.pt")
    assert all(torch.equal(start[n], reproduced[n] * mask[n]) for n in mask)
    evaluated = [r["iteration"] for r in map(json.loads, (level / "metrics.jsonl").read_text().splitlines())
                 if r["name"] == "test_accuracy"]
    assert evaluated == [6, 8, 12]  # starts at the rewind step, then lines up with the trunk's epochs


def lrs(directory: Path) -> list[float]:
    return [r["value"] for r in map(json.loads, (directory / "metrics.jsonl").read_text().splitlines())
            if r["name"] == "lr"]


def test_learning_rate_rewinding_and_finetuning(cli):
    schedule = ["--milestone_steps=2ep", "--gamma=0.1"]
    lr = branch(cli, "rewinding", "--levels=1", "--rewind_step=1ep", "--rewind=lr", *schedule)
    trunk_final = load(trunk_dir_with(cli, *schedule) / "model_ep3_it0.pt")
    mask = load(lr / "level_1" / "mask.pt")
    start = load(lr / "level_1" / "model_ep1_it0.pt")
    assert all(torch.equal(start[n], trunk_final[n] * mask[n]) for n in mask)  # keeps the final weights
    assert lrs(lr / "level_1") == pytest.approx([0.1, 0.01, 0.01])  # schedule replayed from 1ep
    tune = branch(cli, "rewinding", "--levels=1", "--rewind_step=1ep", "--rewind=finetune", *schedule)
    assert lrs(tune / "level_1") == pytest.approx([0.01, 0.01, 0.01])  # the final learning rate throughout


def trunk_dir_with(cli, *flags) -> Path:
    return location(cli, "train", *TINY, *flags)


@pytest.mark.parametrize("control", ["reinit", "shuffle_layerwise", "shuffle_global", "sign"])
def test_reinitialize_controls(cli, control):
    path = branch(cli, "reinitialize", "--levels=1", f"--control={control}")
    ticket_dir = location(cli, "branch", "iterative", *TINY, "--levels=1") / "level_1"
    assert (ticket_dir / "done.json").exists()  # the tickets were trained first
    ticket, mask = load(ticket_dir / "mask.pt"), load(path / "level_1" / "mask.pt")
    init = load(trunk_dir(cli) / "model_ep0_it0.pt")
    start = load(path / "level_1" / "model_ep0_it0.pt")
    if control in ("reinit", "sign"):
        assert all(torch.equal(mask[n], ticket[n]) for n in mask)
    else:
        assert any(not torch.equal(mask[n], ticket[n]) for n in PRUNED)
        assert sum(int(m.sum()) for m in mask.values()) == sum(int(m.sum()) for m in ticket.values())
    if control == "shuffle_layerwise":
        assert all(int(mask[n].sum()) == int(ticket[n].sum()) for n in mask)
    if control.startswith("shuffle"):
        assert all(torch.equal(start[n], init[n] * mask[n]) for n in mask)
    if control == "reinit":
        assert not torch.equal(start["fc_layers.0.weight"], init["fc_layers.0.weight"] * mask["fc_layers.0.weight"])
    if control == "sign":
        for n in mask:
            kept = start[n][mask[n]]
            assert torch.allclose(kept.abs(), kept.abs()[0].expand_as(kept))  # one magnitude per layer
            assert torch.equal(kept.sign(), init[n][mask[n]].sign())  # the init's signs


ONESHOT = ["--prune_fraction=0.5"]


def considered_density(path: Path, names=ALL_WEIGHTS) -> float:
    layers = counts(path)
    return sum(layers[n]["unpruned"] for n in names) / sum(layers[n]["total"] for n in names)


@pytest.mark.parametrize("strategy", ["random", "magnitude", "snip2", "grasp2", "graspabs2", "synflow"])
def test_oneshot_each_strategy_prunes_exactly_the_fraction(cli, strategy):
    path = branch(cli, "oneshot", f"--strategy={strategy}", *ONESHOT)
    assert considered_density(path) == pytest.approx(0.5, abs=1e-4)
    mask, final = load(path / "mask.pt"), load(path / "model_ep3_it0.pt")
    assert all((final[n][~mask[n]] == 0).all() for n in mask)


def test_oneshot_magnitude_highest_inverts_the_selection(cli):
    low = load(branch(cli, "oneshot", "--strategy=magnitude", *ONESHOT) / "mask.pt")
    high = load(branch(cli, "oneshot", "--strategy=magnitude", "--prune_highest", *ONESHOT) / "mask.pt")
    init = load(trunk_dir(cli) / "model_ep0_it0.pt")
    for n in ALL_WEIGHTS:
        assert init[n].abs()[low[n]].min() >= torch.cat([init[m].abs()[~low[m]] for m in ALL_WEIGHTS]).max()
        assert init[n].abs()[high[n]].max() <= torch.cat([init[m].abs()[~high[m]] for m in ALL_WEIGHTS]).min()


def test_oneshot_randomize_layerwise_keeps_each_layers_count(cli):
    plain = counts(branch(cli, "oneshot", "--strategy=magnitude", *ONESHOT))
    shuffled = branch(cli, "oneshot", "--strategy=magnitude", "--randomize_layerwise", *ONESHOT)
    assert counts(shuffled) == plain


def test_oneshot_prunes_trained_weights_and_trains_from_a_late_state(cli):
    path = branch(cli, "oneshot", "--strategy=magnitude", "--prune_step=3ep", "--state_step=1ep", "--start_step=state",
                  *ONESHOT)
    trunk = trunk_dir(cli)
    final, at_1ep = load(trunk / "model_ep3_it0.pt"), load(trunk / "model_ep1_it0.pt")
    mask = load(path / "mask.pt")
    kept = torch.cat([final[n].abs()[mask[n]] for n in ALL_WEIGHTS])
    assert kept.min() >= torch.cat([final[n].abs()[~mask[n]] for n in ALL_WEIGHTS]).max()
    start = load(path / "model_ep1_it0.pt")
    assert all(torch.equal(start[n], at_1ep[n] * mask[n]) for n in mask)


def test_synflow_rounds_reach_the_same_density(cli):
    path = branch(cli, "oneshot", "--strategy=synflow", "--prune_fraction=0.9", "--prune_iterations=10")
    assert considered_density(path) == pytest.approx(0.1, abs=1e-4)


def test_branch_hashes_are_stable(cli):
    path = location(cli, "branch", "oneshot", *TINY, "--strategy=magnitude", "--prune_fraction=0.5")
    assert path.name == "branch_oneshot_" + FIXED_ONESHOT_HASH
    again = location(cli, "branch", "oneshot", *TINY, "--strategy=magnitude", "--prune_fraction=0.5",
                     "--prune_iterations=1", "--prune_scope=global")  # defaults spelled out: same run
    assert again == path


FIXED_ONESHOT_HASH = "c455d66198625304d58c"  # pinned: names run dirs on users disks


def test_a_killed_branch_resumes_bitwise(cli, tmp_path, monkeypatch):
    import runs.branch as base
    whole = branch(cli, "iterative", "--levels=2")
    real_train = base.train

    def killed(*args, **kwargs):
        if str(args[4]).endswith("level_2"):
            kwargs = {**kwargs, "hooks": [*kwargs["hooks"], Kill(6)]}
        return real_train(*args, **kwargs)

    monkeypatch.setattr(base, "train", killed)
    root = tmp_path / "killed"
    assert cli("branch", "iterative", *TINY, "--levels=2", root_dir=root)[0] == 130
    monkeypatch.setattr(base, "train", real_train)
    assert cli("branch", "iterative", *TINY, "--levels=2", root_dir=root)[0] == 0
    resumed = next(root.rglob("branch_iterative_*"))
    a, b = load(whole / "level_2" / "model_ep3_it0.pt"), load(resumed / "level_2" / "model_ep3_it0.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("argv, needles", [
    (["oneshot", "--strategy=snap", "--prune_fraction=0.5"], ["unknown pruning strategy", "magnitude"]),
    (["oneshot", "--strategy=magnitude", "--prune_fraction=1.0"], ["prune_fraction", "[0, 1)"]),
    (["oneshot", "--strategy=magnitude", "--prune_fraction=0.5", "--prune_layers_to_ignore=fc9.weight"],
     ["fc9.weight", "fc_layers.0.weight"]),
    (["oneshot", "--strategy=magnitude", "--prune_fraction=0.5", "--prune_step=10ep"], ["beyond the end"]),
    (["rewinding", "--levels=1", "--rewind_step=4ep"], ["beyond the end"]),
    (["iterative", "--levels=1", "--pruning_fraction=1.2"], ["pruning_fraction"]),
    (["reinitialize", "--levels=1", "--control=flip"], ["invalid choice"]),
    (["lottery"], ["unknown branch", "iterative"]),
])
def test_bad_branch_flags_are_one_clear_line(cli, argv, needles):
    code, _, err = cli("branch", *argv, *TINY)
    one_line_error(code, err, *needles)
    assert not any(cli.root.rglob("done.json"))  # nothing was trained


def test_the_summary_tables_say_what_each_row_is_with_its_reference(cli):
    """A one-shot table opens with the dense trunk; a control sits beside its ticket; rows that are
    not levels are not headed 'level'."""
    def accuracy(directory: Path) -> str:
        return f"{json.loads((directory / 'done.json').read_text())['metrics']['test_accuracy']:.4f}"

    path = branch(cli, "oneshot", "--strategy=magnitude", *ONESHOT)
    marker = json.loads((path / "branch_done.json").read_text())
    assert marker["header"][0] == "network"
    assert marker["rows"][0] == ["dense (trunk)", "1.0000", accuracy(trunk_dir(cli)), str(trunk_dir(cli))]
    assert marker["rows"][1][0] == "pruned" and marker["rows"][1][2] == accuracy(path)

    path = branch(cli, "reinitialize", "--levels=1", "--control=reinit")
    tickets = location(cli, "branch", "iterative", *TINY, "--levels=1")
    marker = json.loads((path / "branch_done.json").read_text())
    assert marker["header"] == ["level", "density", "test accuracy", "ticket accuracy", "run"]
    assert [row[2:4] for row in marker["rows"]] == [[accuracy(trunk_dir(cli))] * 2,
                                                    [accuracy(path / "level_1"), accuracy(tickets / "level_1")]]
