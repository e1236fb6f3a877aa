"""A real root built once through the CLI (trunks, every kind of branch, a killed run, a corrupt
one, a failed one), and `runs` / `tree` listing exactly those runs with the right state.

The other test_reports_* modules import `reports_root` from here; the root is built once per session.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import open_prune
from tests.cli.test_train import Kill
from tests.conftest import TINY

# TINY without its length and learning rate: a report reads a repeated flag as a grid's alternatives
FLAGS = [flag for flag in TINY if not flag.startswith(("--lr=", "--training_steps="))]
BASE = [*FLAGS, "--training_steps=2ep", "--lr=0.01"]  # short and slow enough that accuracies differ
ITERATIVE = ["branch", "iterative", *BASE, "--levels=2"]
CONTROL = ["branch", "reinitialize", *BASE, "--levels=2", "--control=reinit"]
ONESHOT = ["branch", "oneshot", *BASE, "--strategy=magnitude"]
RANDOM = ["branch", "oneshot", *BASE, "--strategy=random"]
KILLED = ["train", *FLAGS, "--lr=0.02", "--training_steps=3ep"]
FAILED = ["train", *FLAGS, "--lr=0.04", "--training_steps=3ep"]
CORRUPT = ["train", *FLAGS, "--lr=0.03", "--training_steps=2ep"]


@dataclass
class Root:
    path: Path
    datasets: Path
    dirs: dict[str, Path]  # name -> run dir, e.g. "trunk1", "iterative2", "oneshot0.5_1"

    def argv(self, *argv: str) -> list[str]:
        return [*argv, f"--root={self.path}", f"--dataset_root={self.datasets}", "--device=cpu"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    """open_prune.main in-process with its output captured (no capsys: session scope)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = open_prune.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _location(root: Root, *argv: str) -> Path:
    code, out, err = run_cli(*root.argv(*argv, "--display_output_location"))
    assert code == 0, err
    return Path(out.strip())


def _train(root: Root, *argv: str) -> None:
    code, _, err = run_cli(*root.argv(*argv))
    assert code == 0, err


def _killed(root: Root, *argv: str) -> Path:
    """A trunk interrupted after step 6 (its epoch-1 checkpoint on disk, no done.json)."""
    import runs.trunk as trunk

    real = trunk.train
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trunk, "train", lambda *a, **k: real(*a, **{**k, "hooks": [*k.get("hooks", ()), Kill(6)]}))
        assert run_cli(*root.argv(*argv))[0] == 130
    return _location(root, *argv)


def build(base: Path, datasets: Path) -> Root:
    """Train the fixture's runs on one thread (a tiny net trains twice as fast without a thread
    pool that competes for 2 shared cores), then give the thread count back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build(base, datasets)
    finally:
        torch.set_num_threads(threads)


def _build(base: Path, datasets: Path) -> Root:
    root = Root(base / "runs", datasets, {})
    dirs = root.dirs
    for r in (1, 2):
        replicate = f"--replicate={r}"
        _train(root, "train", *BASE, replicate)
        dirs[f"trunk{r}"] = _location(root, "train", *BASE, replicate)
        for name, argv in (("iterative", ITERATIVE), ("control", CONTROL)):
            _train(root, *argv, replicate)
            dirs[f"{name}{r}"] = _location(root, *argv, replicate)
        for fraction in ("0.5", "0.8"):
            _train(root, *ONESHOT, f"--prune_fraction={fraction}", replicate)
            dirs[f"oneshot{fraction}_{r}"] = _location(root, *ONESHOT, f"--prune_fraction={fraction}", replicate)
        _train(root, *RANDOM, "--prune_fraction=0.5", replicate)  # the random control, at 0.5 only
        dirs[f"random0.5_{r}"] = _location(root, *RANDOM, "--prune_fraction=0.5", replicate)
    dirs["killed"] = _killed(root, *KILLED)
    with open(dirs["killed"] / "metrics.jsonl", "a") as handle:
        handle.write('{"iteration": 5, "step": "1ep1it", "na')  # killed mid-line
    dirs["failed"] = _killed(root, *FAILED)
    (dirs["failed"] / "failed.json").write_text(json.dumps({"reason": "the loss became nan", "step": "1ep2it"}))
    _train(root, *CORRUPT)
    dirs["corrupt"] = _location(root, *CORRUPT)
    done = dirs["corrupt"] / "done.json"
    done.write_text(done.read_text()[:25])  # truncated mid-write
    return root


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `path` with its size and mtime: what 'touched nothing' compares."""
    result = {}
    for directory, subdirs, files in os.walk(path):
        for name in subdirs + files:
            full = Path(directory, name)
            stat = full.stat()
            result[str(full.relative_to(path))] = (stat.st_size, stat.st_mtime_ns)
    return result


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("open_prune: error:"), err
    for needle in needles:
        assert needle in err, err


# ---- runs -----------------------------------------------------------------------------------------

def listing(root: Root, *flags: str) -> list[dict]:
    code, out, err = run_cli("runs", f"--root={root.path}", "--format=json", *flags)
    assert code == 0, err
    return json.loads(out)


def expected_rows(root: Root) -> dict[str, tuple[str, str, object]]:
    """{run path relative to the root: (kind, status, level)} of every run the fixture made."""
    def rel(path):
        return str(path.relative_to(root.path))
    rows = {}
    for name, path in root.dirs.items():
        if name.startswith(("iterative", "control")):
            kind = "branch_iterative" if name.startswith("iterative") else "branch_reinitialize"
            rows.update({rel(path / f"level_{level}"): (kind, "done", level) for level in range(3)})
        elif name.startswith(("oneshot", "random")):
            rows[rel(path)] = ("branch_oneshot", "done", None)
        else:
            status = {"killed": "partial", "failed": "failed", "corrupt": "corrupt"}.get(name, "done")
            rows[rel(path)] = ("train", status, None)
    return rows


def test_runs_lists_exactly_the_runs_with_their_status(reports_root):
    rows = listing(reports_root)
    assert {r["run"]: (r["kind"], r["status"], r["level"]) for r in rows} == expected_rows(reports_root)
    assert len(rows) == len(expected_rows(reports_root)) == 5 + 2 * 3 + 2 * 3 + 4 + 2


def test_runs_reads_accuracy_and_density_from_done_and_sparsity(reports_root):
    for row in listing(reports_root):
        directory = reports_root.path / row["run"]
        if row["status"] == "done":
            done = json.loads((directory / "done.json").read_text())
            assert row["test_accuracy"] == done["metrics"]["test_accuracy"]
        else:
            assert row["test_accuracy"] is None
        if (directory / "sparsity.json").exists():
            assert row["density"] == json.loads((directory / "sparsity.json").read_text())["density"]
        elif row["kind"] == "train":
            assert row["density"] == 1.0  # a trunk is dense
    by_run = {row["run"]: row for row in listing(reports_root)}
    killed = by_run[str(reports_root.dirs["killed"].relative_to(reports_root.path))]
    assert killed["step"] == "1ep0it"  # its last complete metrics line (the half-written one is skipped)
    failed = by_run[str(reports_root.dirs["failed"].relative_to(reports_root.path))]
    assert failed["note"] == "the loss became nan" and failed["step"] == "1ep2it"


def test_the_table_shows_what_differs_and_each_branch_its_own_settings(reports_root):
    code, out, _ = run_cli("runs", f"--root={reports_root.path}")
    header = out.splitlines()[0].split()
    assert code == 0
    for shown in ("lr", "training_steps", "strategy", "prune_fraction", "control"):  # control: reinitialize's own
        assert shown in header
    for constant in ("batch_size", "model_name", "dataset_name", "momentum", "pruning_fraction", "prune_scope"):
        assert constant not in header  # the same everywhere, or a branch setting left at its default
    code, out, _ = run_cli("runs", f"--root={reports_root.path}", "--where", "strategy=magnitude")
    header = out.splitlines()[0].split()
    assert code == 0 and "strategy" in header  # a filtered listing still says what it filtered on
    assert "lr" not in header and "control" not in header


def test_csv_and_json_carry_every_hparam_of_the_rows(reports_root):
    oneshot = listing(reports_root, "--where", "kind=branch_oneshot")
    assert {"strategy", "prune_fraction", "batch_size", "momentum", "model_name", "prune_scope"} <= set(oneshot[0])


def dirs_of(root: Root, *names: str, level: object = None) -> set[str]:
    """Relative run paths of fixture runs (their levels for level branches)."""
    found = set()
    for name in names:
        path = root.dirs[name]
        if name.startswith(("iterative", "control")):
            found |= {str((path / f"level_{n}").relative_to(root.path)) for n in range(3) if level in (None, n)}
        else:
            found.add(str(path.relative_to(root.path)))
    return found


ONESHOTS = ("oneshot0.5_1", "oneshot0.5_2", "oneshot0.8_1", "oneshot0.8_2")


@pytest.mark.parametrize("flags, names, level", [
    (["--where", "dataset_name=mnist", "--where", "strategy=random"], ("random0.5_1", "random0.5_2"), None),
    (["--where", "strategy=random", "--where", "strategy=magnitude"],  # one key twice: either value
     ONESHOTS + ("random0.5_1", "random0.5_2"), None),
    (["--where", "status=partial", "--where", "status=failed"], ("killed", "failed"), None),
    (["--where", "replicate=2", "--where", "kind=iterative"], ("iterative2",), None),
    (["--where", "prune_fraction=0.50"], ("oneshot0.5_1", "oneshot0.5_2", "random0.5_1", "random0.5_2"), None),
    (["--where", "level=0"], ("iterative1", "iterative2", "control1", "control2"), 0),
    (["--where", "lr=0.02", "--where", "status=partial"], ("killed",), None),
    (["--where", "oneshot.strategy=magnitude"], ONESHOTS, None),
    (["--where", "control=reinit", "--where", "level=2"], ("control1", "control2"), 2),
    (["--where", "strategy=synflow"], (), None),
])
def test_where_filters(reports_root, flags, names, level):
    assert {row["run"] for row in listing(reports_root, *flags)} == dirs_of(reports_root, *names, level=level)


def test_runs_csv_round_trips_through_pandas(reports_root):
    pandas = pytest.importorskip("pandas")
    code, out, _ = run_cli("runs", f"--root={reports_root.path}", "--format=csv")
    frame = pandas.read_csv(io.StringIO(out))
    rows = listing(reports_root)
    assert code == 0 and len(frame) == len(rows)
    assert list(frame["run"]) == [r["run"] for r in rows]
    accuracy = [r["test_accuracy"] for r in rows]
    assert [None if pandas.isna(v) else v for v in frame["test_accuracy"]] == accuracy


def test_a_locked_run_is_running_and_partial_again_once_released(reports_root):
    from platforms.lock import run_lock

    killed = str(reports_root.dirs["killed"].relative_to(reports_root.path))
    def status():
        return {r["run"]: r["status"] for r in listing(reports_root)}[killed]
    with run_lock(reports_root.dirs["killed"]):  # as a live trainer holds it
        assert status() == "running"
    assert status() == "partial"


def test_damaged_files_make_a_run_corrupt_or_partial_never_a_crash(reports_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    copies = {}
    for name in ("trunk1", "oneshot0.5_1", "iterative1"):
        source = reports_root.dirs[name]
        copies[name] = root / source.relative_to(reports_root.path)
        shutil.copytree(source, copies[name])
    (copies["trunk1"] / "hparams.json").write_text('{"kind": "tra')  # killed mid-write
    (copies["oneshot0.5_1"] / "sparsity.json").write_text("{")
    (copies["oneshot0.5_1"] / "metrics.jsonl").write_bytes(b"\xff\xfe garbage\n")
    (copies["iterative1"] / "level_2" / "done.json").unlink()  # level 2 still training
    rows = {r["run"]: r for r in listing(Root(root, reports_root.datasets, {}))}
    def rel(path):
        return str(path.relative_to(root))
    assert rows[rel(copies["trunk1"])]["status"] == "corrupt"
    assert rows[rel(copies["oneshot0.5_1"])]["status"] == "done"
    assert rows[rel(copies["oneshot0.5_1"])]["density"] is None
    assert rows[rel(copies["iterative1"] / "level_2")]["status"] == "partial"
    assert rows[rel(copies["iterative1"] / "level_1")]["status"] == "done"


def test_a_level_branch_killed_between_levels_is_partial_until_its_marker_says_it_finished(reports_root):
    """--levels is not hashed: every level on disk may be done while more were asked for, so only
    the branch's own branch_done.json makes it done."""
    from reports.rundirs import read_run

    branch = reports_root.dirs["iterative1"]
    assert read_run(branch, reports_root.path).state.status == "done"
    marker = branch / "branch_done.json"
    text = marker.read_text()
    marker.unlink()  # as a kill after the last level's training and before the marker
    try:
        run = read_run(branch, reports_root.path)
        assert [level.state.status for level in run.levels] == ["done"] * 3 and run.state.status == "partial"
    finally:
        marker.write_text(text)


# ---- tree -----------------------------------------------------------------------------------------

def test_tree_links_branches_to_their_trunk_by_hash_and_lists_levels(reports_root):
    from reports import tree
    from reports.rundirs import find_runs

    forest = tree.build(find_runs(reports_root.path))
    assert len(forest) == 4  # four trunk hashes
    def stored(path):
        return json.loads((path / "hparams.json").read_text())
    for experiment in forest:
        for trunk in experiment.children:
            trunk_hash = stored(reports_root.path / trunk.id)["hash"]
            assert experiment.id == f"train_{trunk_hash}"
            for branch in trunk.children:
                record = stored(reports_root.path / branch.id)
                assert record["parent_hash"] == trunk_hash
                assert record["replicate"] == stored(reports_root.path / trunk.id)["replicate"]
                if "imp" in record["hparams"]:
                    assert [level.title for level in branch.children] == ["level_0", "level_1", "level_2"]
    code, out, _ = run_cli("tree", f"--root={reports_root.path}")
    assert code == 0
    assert out.count("shared by 5 branches") == 2  # each replicate's trunk feeds five branches
    assert out.count(f"tickets: {reports_root.dirs['iterative1'].name}") == 2
    for name in ("killed", "failed", "corrupt"):
        assert out.count(reports_root.dirs[name].parent.parent.name) == 1
    statuses = re.findall(r"replicate_1/main  (\w+)", out)
    assert sorted(statuses) == ["corrupt", "done", "failed", "partial"]
    level = next(line for line in out.splitlines() if "level_1" in line)
    assert re.search(r"level_1  done  acc 0\.\d{4}  density 0\.\d{4}", level)


def colours(path: Path) -> set:
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return set(getattr(rgb, "get_flattened_data", rgb.getdata)())


def test_a_picture_format_it_cannot_draw_is_refused_before_the_tree_is_printed(reports_root, tmp_path):
    code, out, err = run_cli("tree", f"--root={reports_root.path}", "--plot", "tree.jpg", f"--out={tmp_path}")
    one_line_error(code, err, "tree.jpg", ".png")
    assert out == "" and not list(tmp_path.iterdir())


def test_tree_plot_draws_the_graph_with_status_colours(reports_root, tmp_path):
    from reports.tree_plot import COLOURS

    code, out, err = run_cli("tree", f"--root={reports_root.path}", "--plot", "tree.png", f"--out={tmp_path}",
                             "--engine=matplotlib")
    assert code == 0, err
    from PIL import Image

    with Image.open(tmp_path / "tree.png") as image:
        assert image.size[0] > 600 and image.size[1] > 600
    found = colours(tmp_path / "tree.png")
    for status in ("done", "partial", "failed", "corrupt"):
        assert tuple(int(COLOURS[status][i:i + 2], 16) for i in (1, 3, 5)) in found  # a node of each status


def test_tree_plot_uses_graphviz_when_dot_is_on_path(reports_root, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\ncat > "$DOT_INPUT"\nprintf fake > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOT_INPUT", str(tmp_path / "graph.dot"))
    code, out, err = run_cli("tree", f"--root={reports_root.path}", f"--plot={tmp_path / 'tree.svg'}")
    assert code == 0 and "(dot)" in out, err
    source = (tmp_path / "graph.dot").read_text()
    assert (tmp_path / "tree.svg").read_text() == "fake"
    assert source.startswith("digraph runs {") and "rankdir=LR" in source
    assert source.count("->") == 2 * (5 + 6 + 1) + 3 + 2  # trunk->branch, branch->level, experiment->replicate, tickets
    assert source.count('style=dashed, label="tickets"') == 2
    assert re.search(r'label="level_1\\ndone\\nacc 0\.\d{4}  density 0\.\d{4}"', source)


def test_a_table_gives_up_hparam_columns_to_fit_the_terminal(reports_root):
    from foundations.tables import hparam_text, table
    from reports import listing
    from reports.rundirs import find_runs

    rows = listing.rows(find_runs(reports_root.path))
    shown = listing.defining(rows)
    columns = listing.LEADING + shown + listing.TRAILING
    formats = {name: hparam_text for name in shown}
    full = max(map(len, table(columns, rows, formats).splitlines()))
    width = full - 1
    kept, dropped = listing.fit(columns, shown, rows, width, formats)
    assert dropped and dropped == [c for c in shown if c not in kept]  # only hparams go, the rightmost first
    assert kept == [c for c in columns if c not in dropped] and dropped[-1] == shown[-1]
    assert max(map(len, table(kept, rows, formats).splitlines())) <= width
    assert listing.fit(columns, shown, rows, full, formats) == (columns, [])  # wide enough: nothing goes
    kept, dropped = listing.fit(columns, shown, rows, 10, formats)  # never wide enough: every hparam goes
    assert dropped == shown and kept == listing.LEADING + listing.TRAILING
