"""experiments/orderedness_table.py: each rule's settings per task (the authors' by default, the
earlier uniform ones on request), the run each row reads, the Δ columns against hand computation,
and bad options refused in one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from branches.orderedness import orderedness
from runs.target import branch_target

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "orderedness_table.py"
_SPEC = importlib.util.spec_from_file_location("orderedness_table", _PATH)
table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(table)


@pytest.mark.parametrize("task, settings, keep", [("xor", "authors", "0.5"), ("sine", "authors", "0.2"),
                                                  ("xor", "uniform", "0.5"), ("sine", "uniform", "0.5")])
def test_topk_keeps_the_authors_fraction_per_task_unless_uniform_is_asked(task, settings, keep):
    assert table.flags(task, "topk", settings) == [f"--keep={keep}"]
    assert table.label(task, "topk", settings) == f"topk keep={keep}"


def test_every_other_rule_has_the_authors_setting_on_both_tasks():
    expected = {"random": ["--prune_fraction=0.5"], "threshold": [], "dyn_topk": ["--keep=0.5"],
                "tril_damp": ["--damping=0.9"], "dyn_tril_damp": ["--damping=0.9"], "tril_prune": []}
    for settings in table.SETTINGS:
        for task in table.TASKS:
            assert set(table.SETTINGS[settings][task]) == set(table.RULES)
            for rule, flags in expected.items():
                assert table.flags(task, rule, settings) == flags


def test_the_default_is_the_authors_settings():
    assert table.parse_args([]).settings == "authors"
    assert table.argv("sine", "topk", 3, "/r") == ["branch", "orderedness", "--default_hparams=sine_complete_8",
                                                   "--rule=topk", "--keep=0.2", "--replicate=3", "--root=/r",
                                                   "--quiet"]


def test_only_topk_on_sine_reads_another_run_under_uniform(tmp_path):
    def branch_dir(task, rule, settings):
        branch, _ = branch_target(orderedness.NAME).parse(table.argv(task, rule, 1, str(tmp_path), settings)[2:])
        return branch.dir

    for task in table.TASKS:
        for rule in table.RULES:
            same = branch_dir(task, rule, "authors") == branch_dir(task, rule, "uniform")
            assert same == ((task, rule) != ("sine", "topk"))


def _run(start, final, init, shuffled=0.5, random=0.5):
    return {"train_mse": 0.01, "start": {"orderedness": start}, "final": {"orderedness": final, "density": 0.5},
            "nulls": {"shuffled": {"mean": shuffled}, "random": {"mean": random}, "init": {"mean": init}}}


def test_the_change_columns_by_hand():
    runs = [_run(0.6, 0.8, 0.7), _run(0.5, 0.9, 0.5)]
    assert table.changes(runs[0]) == pytest.approx((0.2, 0.1))
    cells = table.row("topk keep=0.5", runs)
    # Δ trained: 0.2 and 0.4 (mean 0.3, sample std 0.1414); untrained: 0.1 and 0.0 (mean 0.05, std 0.0707)
    assert cells[3] == "0.550 ± 0.071 -> 0.850 ± 0.071"
    assert cells[4:6] == ["+0.300 ± 0.141", "+0.050 ± 0.071"]
    # null (c): 0.7 and 0.5, trained over it by 0.1 and 0.4
    assert cells[-3:-1] == ["0.600 ± 0.141", "+0.250 ± 0.212"]


@pytest.mark.parametrize("flags, needle", [(["--settings=paper"], "invalid choice: 'paper'"),
                                           (["--tasks=xor,cifar"], "--tasks takes xor, sine"),
                                           (["--replicates=0"], "at least 1")])
def test_bad_options_are_one_line_and_no_traceback(flags, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        table.parse_args(flags)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("orderedness_table")
                or "error:" in line]) == 1
