"""A root taken from $OPEN_PRUNE_ROOT is named so in errors (the user never typed --root)."""

from __future__ import annotations

import open_prune
from tests.cli.test_train import one_line_error
from tests.conftest import TINY


def run(capsys, dataset_root, *argv):
    code = open_prune.main(["train", *TINY, f"--dataset_root={dataset_root}", "--device=cpu", *argv])
    return code, capsys.readouterr().err


def test_a_root_from_the_environment_is_named_as_the_environment_variable(tmp_path, dataset_root, monkeypatch,
                                                                          capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    monkeypatch.setenv("OPEN_PRUNE_ROOT", str(a_file))
    code, err = run(capsys, dataset_root)
    one_line_error(code, err, f"$OPEN_PRUNE_ROOT={a_file} is a file", "set $OPEN_PRUNE_ROOT", "--root=DIR")
    assert "--root=" + str(a_file) not in err

    code, err = run(capsys, dataset_root, f"--root={a_file}")  # typed: named as typed
    one_line_error(code, err, f"--root={a_file} is a file")
    assert "OPEN_PRUNE_ROOT" not in err


def test_an_unwritable_root_from_the_environment_is_named_so(tmp_path, dataset_root, monkeypatch, capsys):
    parent = tmp_path / "a_file"
    parent.write_text("")
    monkeypatch.setenv("OPEN_PRUNE_ROOT", str(parent / "runs"))  # below a file: cannot be created
    code, err = run(capsys, dataset_root)
    one_line_error(code, err, f"$OPEN_PRUNE_ROOT={parent / 'runs'} cannot be written")


def test_the_environments_root_is_where_runs_go(tmp_path, dataset_root, monkeypatch, capsys):
    monkeypatch.setenv("OPEN_PRUNE_ROOT", str(tmp_path / "env_root"))
    assert run(capsys, dataset_root, "--quiet")[0] == 0
    assert list((tmp_path / "env_root").glob("train_*/replicate_1/main/done.json"))
