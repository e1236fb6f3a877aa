"""The instability branch (linear mode connectivity) and its interpolation, against oracles:
hand-computed convex combinations, identical endpoints, the copies' own final evaluations, an
independently averaged network, masks that stay zero, and a killed copy resumed bitwise."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import datasets.registry
import models.registry
from branches.instability.interpolation import alphas, barrier, barrier_above_chord, evaluate_path, interpolate_states
from foundations.bundles import DatasetHparams, ModelHparams
from pruning.mask import Mask
from tests.cli.test_branches import load, location
from tests.cli.test_train import Kill, one_line_error
from tests.conftest import TINY
from training.losses import Loss, evaluate


def instability(cli, *flags, root_dir=None) -> tuple[Path, str]:
    code, out, err = cli("branch", "instability", *TINY, *flags, root_dir=root_dir)
    assert code == 0, err
    directory = location(cli, "branch", "instability", *TINY, *flags)
    return (directory if root_dir is None else root_dir / directory.relative_to(cli.root)), out


def curve_json(directory: Path) -> dict:
    return json.loads((directory / "curve.json").read_text())


def done(directory: Path) -> dict:
    return json.loads((directory / "done.json").read_text())


def tiny_bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10))


def tiny_loaders(dataset_root):
    h = DatasetHparams(dataset_name="mnist", batch_size=64, transformation_seed=0)
    return [datasets.registry.get(h, split, root=dataset_root, device="cpu") for split in ("train", "test")]


# ---- the interpolation itself ------------------------------------------------------------------

def test_interpolation_is_the_convex_combination_of_every_float_tensor():
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "running_mean": torch.tensor([0.0, 8.0]),
         "num_batches_tracked": torch.tensor(3)}
    b = {"w": torch.tensor([[5.0, 6.0], [7.0, 8.0]]), "running_mean": torch.tensor([4.0, 0.0]),
         "num_batches_tracked": torch.tensor(9)}
    quarter = interpolate_states(a, b, 0.25)  # 0.75 a + 0.25 b, by hand
    assert torch.equal(quarter["w"], torch.tensor([[2.0, 3.0], [4.0, 5.0]]))
    assert torch.equal(quarter["running_mean"], torch.tensor([1.0, 6.0]))  # BatchNorm buffers too
    assert quarter["num_batches_tracked"].item() == 3  # integers: the nearer endpoint
    assert interpolate_states(a, b, 0.75)["num_batches_tracked"].item() == 9
    for alpha, end in ((0.0, a), (1.0, b)):
        assert all(torch.equal(interpolate_states(a, b, alpha)[k], end[k]) for k in a)  # the ends exactly
    assert alphas(11) == [i / 10 for i in range(11)] and alphas(2) == [0.0, 1.0]
    assert barrier([0.1, 0.4, 0.3]) == pytest.approx(0.4 - 0.2) and barrier([0.2, 0.1, 0.2]) == 0.0
    assert barrier_above_chord([0, 0.5, 1], [0.1, 0.4, 0.3]) == pytest.approx(0.4 - 0.2)  # the chord: 0.2 at 0.5
    assert barrier([0.2, 0.1, 0.0]) == pytest.approx(0.1)  # half the gap between the ends ...
    assert barrier_above_chord([0, 0.5, 1], [0.2, 0.1, 0.0]) == 0.0  # ... which the chord does not count


def test_a_network_interpolated_with_itself_is_flat_and_reset_bn_uses_the_training_statistics(dataset_root):
    train, test = tiny_loaders(dataset_root)
    model = tiny_bn_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss = Loss(None, "classification", 10)
    flat = evaluate_path(model, state, state, 5, test, loss)
    assert [p["alpha"] for p in flat.points] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len({(p["test_loss"], p["test_error"]) for p in flat.points}) == 1
    assert flat.error_barrier == 0.0 and flat.loss_barrier == 0.0
    model.load_state_dict(state)
    assert flat.points[0]["test_loss"] == evaluate(model, test, loss)["test_loss"]

    # --reset_bn_stats: each point's BatchNorm statistics are the training set's (equal batches:
    # the cumulative average of the batch means is the mean over all 256 examples)
    other = {k: (v * 0.5 if v.is_floating_point() else v) for k, v in state.items()}
    reset = evaluate_path(model, state, other, 3, test, loss, bn_batches=lambda: train.batches(0))
    hidden = torch.cat([nn.functional.linear(x.flatten(1), other["1.weight"], other["1.bias"])
                        for x, _ in train.batches(0)])
    assert torch.allclose(model[2].running_mean, hidden.mean(0), atol=1e-5)  # the last point, alpha = 1
    by_hand = tiny_bn_model()
    by_hand.load_state_dict(other)
    by_hand[2].running_mean.copy_(hidden.mean(0))
    by_hand[2].running_var.copy_(torch.stack([h.var(0) for h in hidden.split(64)]).mean(0))
    assert reset.points[-1]["test_loss"] == pytest.approx(evaluate(by_hand, test, loss)["test_loss"], rel=1e-5)


# ---- the branch end to end --------------------------------------------------------------------

def test_two_copies_from_init_their_curve_and_a_rerun_that_trains_nothing(cli, dataset_root):
    path, out = instability(cli, "--from_step=0ep")
    trunk = location(cli, "train", *TINY)
    assert path.parent == trunk.parent and path.name.startswith("branch_instability_")
    assert "barrier" in out and "alpha" in out
    a, b = path / "copy_a", path / "copy_b"
    assert torch.equal(load(a / "model_ep0_it0.pt")["fc.weight"], load(trunk / "model_ep0_it0.pt")["fc.weight"])
    final_a, final_b = load(a / "model_ep3_it0.pt"), load(b / "model_ep3_it0.pt")
    assert not torch.equal(final_a["fc.weight"], final_b["fc.weight"])  # two data orders, two networks
    seeds = json.loads((path / "hparams.json").read_text())["seeds"]
    assert seeds["copy_a_data_order"] != seeds["copy_b_data_order"]

    record = curve_json(path)
    entry = record["networks"]["dense"]
    points = entry["curve"]
    assert [p["alpha"] for p in points] == alphas(11)
    for point, copy in ((points[0], a), (points[-1], b)):  # the ends are the copies' own final evaluations
        metrics = done(copy)["metrics"]
        assert point["test_loss"] == metrics["test_loss"] and point["test_accuracy"] == metrics["test_accuracy"]
    errors = [p["test_error"] for p in points]
    assert entry["error_barrier"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2, abs=1e-12)
    assert errors == [pytest.approx(1 - p["test_accuracy"]) for p in points]
    chord = [errors[0] + (errors[-1] - errors[0]) * i / 10 for i in range(11)]
    assert entry["error_barrier_above_chord"] == pytest.approx(max(e - c for e, c in zip(errors, chord)), abs=1e-12)

    # the midpoint against an independently averaged network
    model = models.registry.get(ModelHparams(model_name="mnist_lenet_16_8"), (1, 28, 28), 10, seed=0)
    model.load_state_dict({k: (final_a[k] + final_b[k]) / 2 for k in final_a})
    midpoint = evaluate(model, tiny_loaders(dataset_root)[1], Loss(None, "classification", 10))
    assert points[5]["test_loss"] == pytest.approx(midpoint["test_loss"], rel=1e-5)

    summary = json.loads((path / "branch_done.json").read_text())  # the branch's marker: barriers and table
    assert summary["metrics"]["error_barrier"] == entry["error_barrier"] and summary["rows"]
    assert not (path / "done.json").exists()  # done.json is the training loop's alone
    from reports import listing
    from reports.rundirs import find_runs
    listed = [row for row in listing.rows(find_runs(cli.root)) if row["kind"] == "branch_instability"]
    assert listed[0]["result"] == f"barrier {entry['error_barrier']:.4g}, above chord " \
                                  f"{entry['error_barrier_above_chord']:.4g}"

    table = pd.read_csv(path / "curve.csv")  # tidy, through pandas
    assert list(table.network.unique()) == ["dense"] and table.test_error.tolist() == errors

    stamps = {p: p.stat().st_mtime_ns for p in path.rglob("*")
              if p.is_file() and p.name not in ("branch_done.json", ".lock")}
    again, out = instability(cli, "--from_step=0ep")
    assert again == path and "barrier" in out
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # nothing trained or rewritten

    fewer, _ = instability(cli, "--from_step=0ep", "--points=3")  # not hashed: the same copies
    assert fewer == path and {p: p.stat().st_mtime_ns for p in path.glob("copy_*/*.pt")} == \
        {p: t for p, t in stamps.items() if p.parent.name.startswith("copy_") and p.suffix == ".pt"}
    three = curve_json(path)["networks"]["dense"]["curve"]
    assert [p["alpha"] for p in three] == [0.0, 0.5, 1.0] and three[1]["test_loss"] == points[5]["test_loss"]


def test_the_same_data_order_gives_identical_copies_and_a_flat_curve(cli):
    path, _ = instability(cli, "--from_step=1ep", "--same_data_order", "--points=4")
    a, b = load(path / "copy_a" / "model_ep3_it0.pt"), load(path / "copy_b" / "model_ep3_it0.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise equal on the CPU
    points = curve_json(path)["networks"]["dense"]["curve"]
    assert len({(p["test_loss"], p["test_error"]) for p in points}) == 1
    assert curve_json(path)["networks"]["dense"]["error_barrier"] == 0.0
    assert done(path / "copy_a")["metrics"]["test_loss"] == points[2]["test_loss"]


def test_under_a_mask_pruned_weights_stay_zero_on_the_whole_line_beside_the_controls(cli):
    code, _, err = cli("branch", "iterative", *TINY, "--levels=1")
    assert code == 0, err
    tickets = location(cli, "branch", "iterative", *TINY, "--levels=1")
    mask_run = f"{tickets.name}/level_1/"  # a trailing slash is the same run
    path, out = instability(cli, "--from_step=0ep", f"--mask_run={mask_run}", "--points=3")
    assert path == location(cli, "branch", "instability", *TINY, "--from_step=0ep",
                            f"--mask_run={tickets.name}/level_1")
    mask = load(tickets / "level_1" / "mask.pt")
    ends = [load(path / copy / "model_ep3_it0.pt") for copy in ("copy_a", "copy_b")]
    for alpha in alphas(7):
        state = interpolate_states(*ends, alpha)
        assert all((state[name][~kept] == 0).all() for name, kept in mask.items())
    record = curve_json(path)["networks"]
    assert list(record) == ["mask", "random_pruning", "reinit"] and "reinit" in out
    shuffled = load(path / "random_pruning" / "copy_a" / "mask.pt")
    for name, kept in mask.items():  # random pruning: the same count in every layer, elsewhere
        assert shuffled[name].sum() == kept.sum()
    assert any(not torch.equal(shuffled[n], mask[n]) for n in mask)
    assert torch.equal(load(path / "reinit" / "copy_a" / "mask.pt")[name], mask[name])
    trunk_init = load(location(cli, "train", *TINY) / "model_ep0_it0.pt")
    reinit_start = load(path / "reinit" / "copy_a" / "model_ep0_it0.pt")
    kept = mask["fc_layers.0.weight"]
    assert not torch.equal(reinit_start["fc_layers.0.weight"][kept], trunk_init["fc_layers.0.weight"][kept])
    metrics = json.loads((path / "branch_done.json").read_text())["metrics"]
    assert metrics["error_barrier"] == record["mask"]["error_barrier"]
    assert metrics["reinit_error_barrier"] == record["reinit"]["error_barrier"]
    densities = {name: entry["density"] for name, entry in record.items()}
    assert densities["mask"] == densities["random_pruning"] == densities["reinit"] < 1


def test_a_killed_copy_resumes_bitwise(cli, tmp_path, monkeypatch):
    import runs.branch as base
    whole, _ = instability(cli, "--from_step=0ep", "--points=3")
    real_train = base.train

    def killed(*args, **kwargs):
        if str(args[4]).endswith("copy_b"):
            kwargs = {**kwargs, "hooks": [*kwargs["hooks"], Kill(6)]}
        return real_train(*args, **kwargs)

    monkeypatch.setattr(base, "train", killed)
    root = tmp_path / "killed"
    assert cli("branch", "instability", *TINY, "--from_step=0ep", "--points=3", root_dir=root)[0] == 130
    monkeypatch.setattr(base, "train", real_train)
    resumed, _ = instability(cli, "--from_step=0ep", "--points=3", root_dir=root)
    a, b = load(whole / "copy_b" / "model_ep3_it0.pt"), load(resumed / "copy_b" / "model_ep3_it0.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert curve_json(whole)["networks"] == curve_json(resumed)["networks"]


@pytest.mark.parametrize("flags, needles", [
    (["--from_step=0ep", "--points=1"], ["--points=1", "at least 2"]),
    (["--from_step=10ep"], ["--from_step=10ep", "beyond the end"]),
    (["--from_step=0ep", "--mask_run=branch_iterative_0123456789ab/level_1"], ["no mask.pt", "relative to"]),
    (["--from_step=0ep", "--mask_run=/abs/level_1"], ["relative to the trunk's replicate directory"]),
    (["--from_step=0ep", "--controls=reinit"], ["needs --mask_run"]),
    (["--from_step=0ep", "--controls=shuffle"], ["random_pruning, reinit"]),
    (["--from_step=0ep", "--reset_bn_stats"], ["no BatchNorm", "drop --reset_bn_stats"]),
])
def test_bad_input_is_one_line(cli, flags, needles):
    code, _, err = cli("branch", "instability", *TINY, *flags)
    one_line_error(code, err, *needles)
    assert not any(cli.root.rglob("done.json"))  # nothing was trained


def test_a_mask_of_another_model_is_refused(cli):
    replicate = location(cli, "train", *TINY).parent
    Mask({"conv.weight": torch.ones(4, 1, 3, 3, dtype=torch.bool)}).save(replicate / "foreign")
    code, _, err = cli("branch", "instability", *TINY, "--from_step=0ep", "--mask_run=foreign")
    one_line_error(code, err, "another model", "conv.weight")
    assert not any(cli.root.rglob("done.json"))


def test_tree_shows_the_barrier_of_a_finished_instability_branch(cli):
    from reports import tree
    from reports.rundirs import find_runs

    path, _ = instability(cli, "--from_step=0ep")
    entry = curve_json(path)["networks"]["dense"]
    drawn = tree.render(tree.build(find_runs(cli.root)))
    assert f"barrier {entry['error_barrier']:.4g}" in drawn


def test_report_aggregates_the_barriers_over_replicates_and_draws_no_empty_accuracy_plot(cli, capsys, tmp_path):
    import open_prune

    barriers = [curve_json(instability(cli, "--from_step=0ep", f"--replicate={r}")[0])["networks"]["dense"]
                ["error_barrier"] for r in (1, 2)]
    out = tmp_path / "report"
    code = open_prune.main(["report", "branch", "instability", *TINY, "--from_step=0ep", "--replicates=1-2",
                            f"--root={cli.root}", f"--out={out}"])
    assert code == 0, capsys.readouterr().err
    mean, std = sum(barriers) / 2, abs(barriers[0] - barriers[1]) / 2 ** 0.5  # by hand, two replicates
    half = 12.706204736174698 * std / 2 ** 0.5  # t(0.975, 1 degree of freedom) * std / sqrt(n)
    row = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| barrier |"))
    assert f"{mean:.4f} ± {std:.4f} [{mean - half:.4f}, {mean + half:.4f}]" in row
    assert not list(out.glob("accuracy_vs_*.png"))  # no accuracy, so no empty accuracy figures


def test_report_refuses_a_grid_with_nothing_to_aggregate(cli, capsys, tmp_path):
    import open_prune

    path, _ = instability(cli, "--from_step=0ep")
    marker = json.loads((path / "branch_done.json").read_text())
    (path / "branch_done.json").write_text(json.dumps({**marker, "headline": []}))  # as an older marker
    code = open_prune.main(["report", "branch", "instability", *TINY, "--from_step=0ep", f"--root={cli.root}",
                            f"--out={tmp_path / 'report'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no result of their own" in err
    assert not (tmp_path / "report").exists()
