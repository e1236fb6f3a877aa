"""metrics.jsonl lines: what MetricLog appends is what json.dumps would write, and reads back."""

from __future__ import annotations

import json

from training.metrics import MetricLog, read_records


def test_lines_are_json_dumps_of_each_record_and_read_back(tmp_path):
    values = {"test_loss": 0.1, "tiny": 1e-300, "negative_zero": -0.0, "count": 3, "big": 2 ** 70,
              "undefined": float("nan"), "unbounded": float("inf"), "flag": True, "note": "é名\"\\"}
    log = MetricLog(tmp_path / "metrics.jsonl")
    log.write(7, "0ep7it", values)
    log.write_many([(8, "0ep8it", {"lr": 0.05}), (9, "0ep9it", {})])
    expected = [json.dumps({"iteration": 7, "step": "0ep7it", "name": name,
                            "value": None if isinstance(value, float) and value != value or value == float("inf")
                            else value})
                for name, value in values.items()]
    expected.append(json.dumps({"iteration": 8, "step": "0ep8it", "name": "lr", "value": 0.05}))
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == expected
    records = list(read_records(tmp_path / "metrics.jsonl"))
    assert [(r["iteration"], r["name"]) for r in records] == [(7, name) for name in values] + [(8, "lr")]
    assert records[-1]["value"] == 0.05 and records[0]["value"] == 0.1


def test_nothing_is_written_when_disabled(tmp_path):
    MetricLog(tmp_path / "metrics.jsonl", enabled=False).write(1, "0ep1it", {"test_loss": 0.5})
    assert not (tmp_path / "metrics.jsonl").exists()
