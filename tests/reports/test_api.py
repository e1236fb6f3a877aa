"""The Python API (api/) against the reading commands' own output and the run dirs' files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from foundations.errors import UserError
from tests.reports.test_root import BASE, run_cli, snapshot

pandas = pytest.importorskip("pandas")
api = pytest.importorskip("api")


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b or (a is None and isinstance(b, float) and math.isnan(b))


def test_runs_has_the_rows_and_columns_of_the_runs_command_and_every_hparam(reports_root):
    before = snapshot(reports_root.path)
    frame = api.runs(reports_root.path)
    code, out, err = run_cli("runs", f"--root={reports_root.path}", "--format=json")
    assert code == 0, err
    listed = json.loads(out)
    assert len(frame) == len(listed)
    for row, expected in zip(frame.to_dict("records"), listed):
        for column, value in expected.items():
            assert same(value, row[column]), (column, value, row[column])
        assert row["path"] == str(reports_root.path / expected["run"])
    assert {"training.lr", "model.model_name", "lr", "model_name"} <= set(frame.columns)
    assert snapshot(reports_root.path) == before  # reading wrote nothing


def test_one_run_its_metrics_model_and_mask(reports_root):
    directory = reports_root.dirs["oneshot0.8_1"]
    run = api.open_run(directory)
    stored = json.loads((directory / "hparams.json").read_text())
    assert run.hparams == stored["hparams"] and run.done == json.loads((directory / "done.json").read_text())
    lines = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert run.metrics.to_dict("records") == lines
    accuracy = run.curve("test_accuracy")
    assert list(accuracy.items()) == [(r["iteration"], r["value"]) for r in lines if r["name"] == "test_accuracy"]
    final = run.done["final_step"]
    state = torch.load(directory / f"model_ep{final.split('ep')[0]}_it0.pt", weights_only=True)
    model = run.model()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    mask = run.mask()
    assert mask.keys() == torch.load(directory / "mask.pt", weights_only=True).keys()
    assert api.open_run(reports_root.dirs["trunk1"]).mask() is None
    with pytest.raises(UserError, match="no weights saved at 1ep3it"):
        run.model("1ep3it")
    with pytest.raises(UserError, match="not a run directory"):
        api.open_run(reports_root.path / "nothing_here")
    with pytest.raises(UserError, match="not inside a run"):
        api.open_run(reports_root.path)


def test_report_is_the_report_commands_table(reports_root, tmp_path):
    argv = ["branch", "oneshot", *BASE, "--strategy=magnitude", "--prune_fraction=0.5,0.8", "--replicates=1-2"]
    table = api.report(argv, root=reports_root.path)
    assert list(table.prune_fraction) == [0.5, 0.8] and list(table.n) == [2, 2]
    for row, fraction in zip(table.to_dict("records"), ("0.5", "0.8")):
        accuracies = [json.loads((reports_root.dirs[f"oneshot{fraction}_{r}"] / "done.json").read_text())
                      ["metrics"]["test_accuracy"] for r in (1, 2)]
        assert row["test_accuracy"] == pytest.approx(np.mean(accuracies))
        assert row["std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert table["strategy=random: test_accuracy"].notna().tolist() == [True, False]  # random control at 0.5 only
    code, _, err = run_cli("report", *argv, f"--root={reports_root.path}", f"--out={tmp_path}")
    assert code == 0, err
    tidy = api.report(argv, root=reports_root.path, tidy=True)
    written = pandas.read_csv(tmp_path / "runs.csv")
    assert list(tidy.columns) == list(written.columns) and len(tidy) == len(written)
    assert tidy.final_test_accuracy.tolist() == pytest.approx(written.final_test_accuracy.tolist())
    with pytest.raises(UserError):
        api.report("branch no_such_branch", root=reports_root.path)
