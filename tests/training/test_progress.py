"""training/progress.py: the rate of a run that starts after step 0, batch-job lines throttled by
time (and the last always), and a terminal's history of one line per evaluation."""

from __future__ import annotations

import io
import re

import pytest

from tests.conftest import TINY
from training import progress
from training.progress import Progress

LOUD = [flag for flag in TINY if flag != "--quiet"]
LINE = re.compile(r"^(\S+) step (\S+)  .*elapsed=([\d.]+)s  ([\d.]+) it/s$")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def metrics() -> dict[str, float]:
    return {"train_loss": 0.5, "test_loss": 0.25, "test_accuracy": 0.75, "lr": 0.1}


def test_the_rate_counts_the_steps_of_this_session_not_the_absolute_iteration():
    """As the loop calls it: a branch training from iteration 6000 to 7200, resumed at 6600."""
    clock, out = Clock(), io.StringIO()
    start, end, resumed = 6000, 7200, 6600
    shown = Progress("run", end - start, resumed - start, quiet=False, terminal=False, clock=clock, out=out)
    for _ in range(600):
        shown.update()
    clock.now = 1.0
    shown.evaluated(resumed + 600, "12ep0it", metrics())
    line = out.getvalue().strip()
    assert LINE.match(line)[4] == "600.00" and "elapsed=1.0s" in line
    assert "train_loss=0.5000  test_loss=0.2500  test_accuracy=0.7500" in line and "lr=" not in line


def test_batch_lines_come_at_most_every_interval_and_the_last_always():
    clock, out = Clock(), io.StringIO()
    shown = Progress("xor", 2000, 0, quiet=False, terminal=False, clock=clock, out=out, line_every_s=10.0)
    shown.evaluated(0, "0ep0it", metrics())
    for step in range(1, 2001):  # an evaluation every step, 0.05 s apart: 100 s in all
        shown.update()
        clock.now += 0.05
        shown.evaluated(step, f"{step}ep0it", metrics())
    shown.close()
    steps = [LINE.match(line)[2] for line in out.getvalue().splitlines()]
    assert steps[0] == "0ep0it" and steps[-1] == "2000ep0it"
    assert 10 <= len(steps) <= 12  # one every 10 s, not 2001


def test_a_line_held_back_is_printed_at_close():
    """A run that stops early (a signal, an early stop): its last evaluation is shown anyway."""
    clock, out = Clock(), io.StringIO()
    shown = Progress("run", 100, 0, quiet=False, terminal=False, clock=clock, out=out, line_every_s=10.0)
    shown.evaluated(0, "0ep0it", metrics())
    shown.update()
    clock.now = 1.0
    shown.evaluated(1, "0ep1it", metrics())
    assert out.getvalue().count("\n") == 1
    shown.close()
    shown.close()
    assert [LINE.match(line)[2] for line in out.getvalue().splitlines()] == ["0ep0it", "0ep1it"]


def test_a_terminal_keeps_one_line_per_evaluation_above_the_bar(capsys):
    shown = Progress("run", 3, 0, quiet=False, terminal=True)
    for step in range(1, 4):
        shown.update()
        shown.evaluated(step, f"{step}ep0it", metrics())
    shown.close()
    captured = capsys.readouterr()
    history = [line for line in re.split(r"[\r\n]", captured.err) if LINE.match(line.strip())]
    assert [LINE.match(line.strip())[2] for line in history] == ["1ep0it", "2ep0it", "3ep0it"]
    assert captured.out == ""


def test_quiet_and_other_ranks_show_nothing(capsys):
    for shown in (Progress("run", 2, 0, quiet=True, terminal=True), Progress("run", 2, 0, quiet=False, primary=False)):
        shown.update()
        shown.evaluated(1, "1ep0it", metrics())
        shown.close()
    assert capsys.readouterr() == ("", "")


@pytest.fixture
def ticking(monkeypatch):
    """progress's clock advances one second each time it is read."""
    clock = Clock()

    def tick() -> float:
        clock.now += 1.0
        return clock.now

    monkeypatch.setattr(progress, "_now", tick)


def test_a_branch_that_starts_after_step_0_reports_its_own_rate(cli, ticking):
    assert cli("train", *TINY)[0] == 0
    code, out, _ = cli("branch", "oneshot", *LOUD, "--strategy=magnitude", "--prune_fraction=0.5",
                       "--state_step=2ep", "--start_step=state")
    assert code == 0
    lines = [m for m in map(LINE.match, out.splitlines()) if m and m[1].startswith("branch_oneshot_")]
    assert [m[2] for m in lines] == ["2ep0it", "3ep0it"]  # starts at iteration 8 of 12: 4 steps here
    last = lines[-1]
    assert round(float(last[3]) * float(last[4])) == 4  # was 12: absolute iterations over this session's time


def test_a_batch_job_with_an_evaluation_every_step_prints_the_first_and_the_last(cli, monkeypatch):
    monkeypatch.setattr(progress, "LINE_EVERY_S", 3600.0)
    code, out, _ = cli("train", *LOUD, "--eval_every=1it")
    assert code == 0
    steps = [LINE.match(line)[2] for line in out.splitlines() if LINE.match(line)]
    assert steps == ["0ep0it", "3ep0it"]
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    code, out, _ = cli("train", *LOUD, "--eval_every=1it", "--replicate=2")
    assert len([line for line in out.splitlines() if LINE.match(line)]) == 13  # 0..12: every one
