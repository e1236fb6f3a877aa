"""Results never shrink: the options left out of the hash (--levels, spam's --sparsities and
--criteria) only ever add. A smaller request prints its own rows, leaves branch_done.json and
spam's table whole, and counts as done for `submit`; a larger one is still to do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.cli.test_branches import location
from tests.conftest import TINY
from tests.reports.test_root import run_cli

FAST_SPAM = [*TINY, "--marglik_frequency=1", "--hyper_steps=10"]


def marker(path: Path) -> dict:
    return json.loads((path / "branch_done.json").read_text())


def to_do(cli, *argv: str) -> str:
    code, _, err = cli("submit", "--dry_run", "--", "branch", *argv)
    assert code == 0, err
    return err.strip().splitlines()[-1]


def printed_levels(out: str) -> list[str]:
    """The level column of the summary table a branch command prints last."""
    lines = out[out.index("level  density"):].splitlines()[2:]
    return [line.split()[0] for line in lines if line.strip()]


def test_fewer_levels_keep_the_marker_and_submit_has_nothing_to_do(cli):
    code, out, err = cli("branch", "iterative", *TINY, "--levels=2")
    assert code == 0, err
    path = location(cli, "branch", "iterative", *TINY, "--levels=2")
    whole = marker(path)
    assert whole["options"] == {"imp": {"levels": 2}} and [r[0] for r in whole["rows"]] == ["0", "1", "2"]

    code, out, err = cli("branch", "iterative", *TINY, "--levels=1")
    assert code == 0, err
    assert printed_levels(out) == ["0", "1"]  # the request's rows
    assert marker(path) == whole  # the stored results stay whole: levels 2, rows 0..2
    assert to_do(cli, "iterative", *TINY, "--levels=1,2") == "# 0 of 2 runs to do (2 already done)"
    assert to_do(cli, "iterative", *TINY, "--levels=1,2,3") == "# 1 of 3 runs to do (2 already done)"

    code, out, err = run_cli("runs", f"--root={cli.root}", "--format=csv")
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert [(r["level"], r["status"]) for r in rows if r["kind"] == "branch_iterative"] == \
        [("0", "done"), ("1", "done"), ("2", "done")]  # every stored level is still listed

    assert cli("branch", "iterative", *TINY, "--levels=3")[0] == 0  # more levels still add
    grown = marker(path)
    assert grown["options"] == {"imp": {"levels": 3}} and [r[0] for r in grown["rows"]] == ["0", "1", "2", "3"]
    assert grown["rows"][:3] == whole["rows"]


def table_rows(path: Path) -> list[list[str]]:
    return list(csv.reader((path / "table.csv").open()))


def test_fewer_sparsities_print_their_rows_and_leave_the_table_whole(cli):
    wide = ["--sparsities=25,50", "--criteria=opd,magnitude"]
    code, out, err = cli("branch", "spam", *FAST_SPAM, *wide)
    assert code == 0, err
    path = location(cli, "branch", "spam", *FAST_SPAM, *wide)
    whole_csv, whole_json, whole_marker = (path / "table.csv").read_text(), (path / "table.json").read_text(), \
        marker(path)
    assert [r[0] for r in table_rows(path)] == ["sparsity %", "0 (dense)", "25", "50"]
    assert sorted(whole_marker["cells"]) == ["magnitude@25", "magnitude@50", "opd@25", "opd@50"]

    code, out, err = cli("branch", "spam", *FAST_SPAM, "--sparsities=50", "--criteria=opd")
    assert code == 0, err
    printed = out[out.index("sparsity %"):].splitlines()
    assert printed[0].split() == ["sparsity", "%", "spam/opd", "map/opd"]  # the subset asked for
    assert [line.split()[0] for line in printed[2:4]] == ["0", "50"]
    assert (path / "table.csv").read_text() == whole_csv and (path / "table.json").read_text() == whole_json
    assert marker(path) == whole_marker
    for request in (["--sparsities=25", "--criteria=opd"], ["--sparsities=50", "--criteria=magnitude"], wide,
                    ["--sparsities=50,25", "--criteria=MAGNITUDE, opd"]):
        assert to_do(cli, "spam", *FAST_SPAM, *request).startswith("# 0 of 1 runs"), request
    assert to_do(cli, "spam", *FAST_SPAM, "--sparsities=75", "--criteria=opd").startswith("# 1 of 1 runs")

    # a request beside the stored one adds its cells, and only those: 75 by opd, not by magnitude
    assert cli("branch", "spam", *FAST_SPAM, "--sparsities=75", "--criteria=opd")[0] == 0
    grown = marker(path)
    assert sorted(grown["cells"]) == ["magnitude@25", "magnitude@50", "opd@25", "opd@50", "opd@75"]
    assert grown["options"]["sweep"] == {"sparsities": "25,50,75", "criteria": "opd,magnitude"}
    assert to_do(cli, "spam", *FAST_SPAM, "--sparsities=25,75", "--criteria=opd").startswith("# 0 of 1 runs")
    assert to_do(cli, "spam", *FAST_SPAM, "--sparsities=75", "--criteria=magnitude").startswith("# 1 of 1 runs")
    rows = table_rows(path)
    assert rows[0] == ["sparsity %", "spam/opd", "spam/magnitude", "map/opd", "map/magnitude"]
    assert [r[0] for r in rows[1:]] == ["0 (dense)", "25", "50", "75"]
    assert rows[4][2] == "-" and rows[4][4] == "-" and rows[4][1] != "-"  # 75 was asked by opd alone
    assert rows[:4] == list(csv.reader(whole_csv.splitlines()))  # the stored rows, as they were
    assert len(json.loads((path / "table.json").read_text())["cells"]) == 2 + 2 * 5
