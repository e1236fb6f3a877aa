"""`plot-weights` on a directory without saved weights says what it holds and which dir to give."""

from __future__ import annotations

from pathlib import Path

import open_prune
from tests.cli.test_train import one_line_error
from tests.conftest import TINY


def plot_weights(capsys, *argv: str) -> tuple[int, str, str]:
    code = open_prune.main(["plot-weights", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_branch_dir_names_its_levels(cli, tmp_path, capsys):
    assert cli("branch", "iterative", *TINY, "--levels=2")[0] == 0
    branch = Path(cli("branch", "iterative", *TINY, "--levels=2", "--display_output_location")[1].strip())
    code, _, err = plot_weights(capsys, str(branch))
    one_line_error(code, err, "holds no model_ep", "a branch dir: its levels or sub-runs hold the weights",
                   "give one of level_1, level_2", f"plot-weights {branch / 'level_2'}")
    assert "level_0" not in err  # the trunk itself: nothing saved there
    code, out, _ = plot_weights(capsys, str(branch / "level_2"), f"--out={tmp_path / 'figures'}")
    assert code == 0 and "wrote" in out


def test_a_directory_above_the_runs_names_the_runs_below_it(cli, capsys):
    assert cli("train", *TINY)[0] == 0
    (train_dir,) = cli.root.glob("train_*")
    code, _, err = plot_weights(capsys, str(train_dir))
    one_line_error(code, err, "not a run dir itself", "give one of replicate_1/main")


def test_a_branch_with_nothing_saved_yet_says_so(tmp_path, capsys):
    branch = tmp_path / "train_0123456789ab" / "replicate_1" / "branch_iterative_0123456789ab"
    (branch / "level_1").mkdir(parents=True)
    one_line_error(*plot_weights(capsys, str(branch))[::2], "branch dir", "saved no weights yet")
