"""Every class of bad input is one line on stderr, exit code 2, no traceback, and no run dir."""

from __future__ import annotations

import json

import pytest

from foundations.bundles import TrainingHparams
from tests.cli.test_train import one_line_error
from tests.conftest import TINY
from training.loop import Boundaries

BAD_TRAIN_FLAGS = [
    # non-finite or out-of-range numbers, with the valid range in the message
    (["--lr=nan"], "finite"), (["--lr=inf"], "finite"), (["--lr=1e400"], "finite"), (["--lr=-0.1"], "positive"),
    (["--momentum=nan"], "finite"), (["--momentum=-1"], "[0, 1)"), (["--momentum=1.5"], "[0, 1)"),
    (["--weight_decay=nan"], "finite"), (["--weight_decay=-1"], ">= 0"),
    (["--gamma=nan", "--milestone_steps=1ep"], "finite"), (["--gamma=-1", "--milestone_steps=1ep"], "positive"),
    (["--momentum=0", "--nesterov"], "momentum above 0"),
    ([f"--init_seed={2**70}"], "2**63"), (["--data_order_seed=-3"], "seed"),
    ([f"--transformation_seed={2**64}"], "seed"),
    (["--training_steps=0ep"], "at least 1it"), (["--training_steps=0ep0it"], "at least 1it"),
    (["--eval_every=0it"], "at least 1it"), (["--checkpoint_every=0ep"], "at least 1it"),
    (["--final_lr=0.001"], "cosine"), (["--lr_schedule=cosine", "--milestone_steps=1ep", "--gamma=0.1"], "cosine"),
    (["--loss=hinge"], "invalid choice"), (["--validation_fraction=1.5"], "outside"),
    # steps beyond the end of training (TINY trains 3 epochs)
    (["--milestone_steps=1ep,4ep", "--gamma=0.1"], "beyond the end"), (["--warmup_steps=5ep"], "beyond the end"),
    (["--eval_every=4ep"], "beyond the end"), (["--weight_save_steps=9ep"], "beyond the end"),
    # malformed values and platform flags
    (["--training_steps=3epochs"], "not a step"), (["--lr=fast"], "invalid float"),
    (["--num_workers=-1"], "zero or more"), (["--replicate=-1"], "zero or positive"),
]


@pytest.mark.parametrize("flags, needle", BAD_TRAIN_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_train_flags_write_nothing(cli, flags, needle):
    code, _, err = cli("train", *TINY, *flags)
    one_line_error(code, err, needle)
    assert "Traceback" not in err
    assert not cli.root.exists() or not any(cli.root.iterdir())


def test_the_regression_loss_list_is_checked_against_the_task(cli):
    one_line_error(*cli("train", *TINY, "--loss=mse", "--dataset_name=xor", "--model_name=xor_sigmoid_2",
                        "--loss=softmax_mse")[::2], "regression")
    assert not cli.root.exists()


@pytest.mark.parametrize("root, needle", [("/proc/open_prune_runs", "cannot be written"), ("FILE", "is a file")])
def test_a_root_that_cannot_hold_runs_is_one_line(cli, tmp_path, root, needle):
    if root == "FILE":
        root = tmp_path / "a_file"
        root.write_text("not a directory")
    code, _, err = cli("train", *TINY, root_dir=root)
    one_line_error(code, err, needle, "--root")


def test_a_dataset_root_that_is_a_file_is_refused(cli, tmp_path):
    path = tmp_path / "datasets.txt"
    path.write_text("x")
    import open_prune
    code = open_prune.main(["train", *TINY, f"--root={cli.root}", f"--dataset_root={path}", "--device=cpu"])
    assert code == 2 and not cli.root.exists()


def test_an_unknown_device_is_one_line(tmp_path, capsys):
    import open_prune
    code = open_prune.main(["train", *TINY, f"--root={tmp_path}", "--device=tpu"])
    one_line_error(code, capsys.readouterr().err, "--device=tpu")


def test_unknown_default_hparams_names_the_flag_the_user_typed(cli):
    code, _, err = cli("train", "--default_hparams=bogus")
    one_line_error(code, err, "--default_hparams='bogus'")
    assert "--model_name" not in err


def test_a_missing_dataset_leaves_no_run_dir(tmp_path, capsys):
    import open_prune
    root = tmp_path / "runs"
    code = open_prune.main(["train", *TINY, f"--root={root}", f"--dataset_root={tmp_path / 'nothing'}"])
    one_line_error(code, capsys.readouterr().err, "not found")
    assert not root.exists()


def test_any_length_of_training_is_planned_in_constant_memory():
    h = TrainingHparams("sgd", 0.1, "99999999999999999ep", weight_save_steps="5ep", eval_every="1000it")
    bounds = Boundaries(h, ipe=469, start=0, end=99999999999999999 * 469, checkpoint_every=None)
    assert bounds.evaluates(10**15 * 1000) and not bounds.evaluates(10**15 * 1000 + 1)
    assert bounds.saves_weights(5 * 469) and len(bounds.saves) == 3
    assert bounds.checkpoints(469 * 7, last=None) and not bounds.checkpoints(469 * 7 + 1, last=None)
    assert bounds.checkpoints(469 * 7, last=469 * 6)  # epochs of 469 steps: every epoch end


def test_epoch_checkpoints_of_tiny_epochs_are_spaced_by_100_steps():
    h = TrainingHparams("adam", 0.01, "1000ep")
    bounds = Boundaries(h, ipe=1, start=0, end=1000, checkpoint_every=None)
    written, last = [], None
    for iteration in range(1001):
        if bounds.checkpoints(iteration, last):
            written.append(iteration)
            last = iteration
    assert written == list(range(1, 1000, 100))
    every = Boundaries(h, ipe=1, start=0, end=1000, checkpoint_every="7it")
    assert every.checkpoints(14, last=13)  # --checkpoint_every is exact


def test_hparams_json_never_holds_nan(cli):
    assert cli("train", *TINY, "--training_steps=1ep")[0] == 0
    text = next(cli.root.rglob("hparams.json")).read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"hparams.json holds {name}"))
    done = next(cli.root.rglob("done.json")).read_text()
    json.loads(done, parse_constant=lambda name: pytest.fail(f"done.json holds {name}"))
