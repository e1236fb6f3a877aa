"""What every reading command promises: listed by `open_prune.py`, a --help each, bad input as
one line and exit 2, and nothing written inside a run dir."""

from __future__ import annotations

import pytest

import open_prune
from tests.reports.test_root import BASE, FLAGS, one_line_error, run_cli, snapshot

COMMANDS = ("runs", "tree", "report", "compare-masks", "plot-weights")


def test_the_reading_commands_are_listed_and_each_has_a_help(capsys):
    code, out, _ = run_cli()
    assert code == 0 and all(f"  {name} " in out for name in COMMANDS)
    for name in COMMANDS:
        if name == "report":
            assert open_prune.main([name, "--help"]) == 0
        else:
            with pytest.raises(SystemExit) as stop:  # argparse's --help exits 0
                open_prune.main([name, "--help"])
            assert stop.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage:") and f"open_prune.py {name}" in out
    code, out, _ = run_cli("report", "branch", "oneshot", "--help")
    assert code == 0 and "--replicates" in out and "--prune_fraction" in out


def test_bad_input_is_one_line_and_exit_2(reports_root, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not runs")
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    root = f"--root={reports_root.path}"
    trunk = reports_root.dirs["trunk1"]
    report = ["report", "branch", "iterative", *reports_root.argv(*BASE, "--levels=2")]
    cases = [
        (["runs", f"--root={tmp_path / 'nowhere'}"], "does not exist"),
        (["runs", f"--root={trunk}"], f"--root={reports_root.path}"),  # names the real root
        (["runs", f"--root={junk}"], "not a root"),
        (["tree", f"--root={a_file}"], "is a file"),
        (["runs", root, "--where", "stratgy=random"], "not an hparam field"),
        (["runs", root, "--where", "strategy"], "is not key=value"),
        (["runs", root, "--format=xml"], "invalid choice"),
        (["tree", root, "--plot", "tree.gif"], ".png"),
        (["tree", root, f"--plot={trunk / 'tree.png'}"], "inside the run tree"),
        (["report", "branch", "iterative", *reports_root.argv(*FLAGS, "--lr=0.5", "--training_steps=2ep",
                                                              "--levels=2")], "no runs of this grid"),
        ([*report, "--replicates=5-1"], "a-b with a <= b"),
        ([*report, "--replicates=1-x"], "a-b with a <= b"),
        ([*report, "--pruning_fraction=0.2,"], "empty alternative"),
        ([*report, f"--out={trunk}"], "inside the run tree"),
        ([*report, "--no_such_flag=1"], "unrecognized arguments"),
        (["report", "branch", "lottery", *BASE], "unknown branch"),
        (["report", "frobnicate"], "report train"),
        (["report", "branch"], "branch's name"),
        (["compare-masks", str(trunk), str(trunk)], "no mask.pt"),
        (["plot-weights", str(junk)], "holds no model_ep"),
    ]
    for argv, needle in cases:
        code, _, err = run_cli(*argv)
        one_line_error(code, err, needle)


def test_reading_commands_write_nothing_inside_run_dirs(reports_root, tmp_path):
    runs = {name: reports_root.path / name for name in sorted(p.name for p in reports_root.path.iterdir())
            if name.startswith("train_")}
    before = {name: snapshot(path) for name, path in runs.items()}
    iterative = reports_root.dirs["iterative1"]
    commands = [
        ["runs", f"--root={reports_root.path}"],
        ["runs", f"--root={reports_root.path}", "--format=csv", "--where", "status=done"],
        ["tree", f"--root={reports_root.path}", "--plot", "tree.png", "--engine=matplotlib"],  # default --out
        ["report", "branch", "iterative", *reports_root.argv(*BASE, "--levels=2", "--replicates=1-3")],
        ["compare-masks", str(iterative)],
        ["plot-weights", str(iterative / "level_2")],  # default --out
    ]
    for argv in commands:
        code, _, err = run_cli(*argv)
        assert code == 0, (argv, err)
    assert {name: snapshot(path) for name, path in runs.items()} == before
    assert sorted(p.name for p in reports_root.path.iterdir()) == sorted([*runs, "reports"])
    assert (reports_root.path / "reports" / "tree.png").exists()


def test_a_root_from_the_environment_is_named_so_in_the_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("OPEN_PRUNE_ROOT", str(tmp_path / "nowhere"))
    code, _, err = run_cli("runs")
    one_line_error(code, err, f"$OPEN_PRUNE_ROOT={tmp_path / 'nowhere'} does not exist")
    code, _, err = run_cli("runs", f"--root={tmp_path / 'elsewhere'}")  # a flag wins, and is named as the flag
    one_line_error(code, err, f"--root={tmp_path / 'elsewhere'} does not exist")
