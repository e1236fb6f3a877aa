"""`--log_to`: TensorBoard event files read back with TensorBoard's own EventAccumulator, and the
offline W&B run read back through W&B's own record schema, both against the run dir's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY

SAVES = "--weight_save_steps=1ep,2ep"  # with the start and the end: iterations 0, 4, 8, 12


def series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        found.setdefault(record["name"], []).append((record["iteration"], record["value"]))
    return found


def kept_counts(run_dir: Path) -> dict[int, dict[str, int]]:
    """{iteration: {weight: nonzero count}} of every saved model file (4 steps per epoch)."""
    found = {}
    for path in run_dir.glob("model_ep*_it*.pt"):
        epoch, it = (int(part[2:]) for part in path.stem[len("model_"):].split("_"))
        state = torch.load(path, weights_only=True)
        found[epoch * 4 + it] = {k: int(v.count_nonzero()) for k, v in state.items() if k.endswith("weight")}
    return found


def location(cli, *argv: str) -> Path:
    code, out, err = cli(*argv, "--display_output_location")
    assert code == 0, err
    return Path(out.strip())


def test_tensorboard_event_files_hold_every_series_the_final_metrics_and_kept_weights(cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = ["branch", "oneshot", *TINY, "--strategy=magnitude", "--prune_fraction=0.8", SAVES]
    code, _, err = cli(*argv, "--log_to=tensorboard")
    assert code == 0, err
    run_dir = location(cli, *argv)
    assert run_dir == location(cli, *argv, "--log_to=tensorboard")  # not hashed
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0,
                                                                             "tensors": 0})
    events.Reload()
    expected = series(run_dir)
    assert set(events.Tags()["scalars"]) == set(expected)
    for name, points in expected.items():
        read = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in read] == [i for i, _ in points]
        assert [v for _, v in read] == pytest.approx([v for _, v in points], rel=1e-6)  # stored as float32
    final = events.Tensors("final/text_summary")[0].tensor_proto.string_val[0].decode()
    done = json.loads((run_dir / "done.json").read_text())
    assert f"| test_accuracy | {done['metrics']['test_accuracy']} |" in final
    assert f"| forward_flops | {done['compute']['forward_flops']} |" in final
    counts = kept_counts(run_dir)
    assert sorted(counts) == [0, 4, 8, 12]
    for iteration, layers in counts.items():
        for name, kept in layers.items():
            histogram = [h for h in events.Histograms(f"kept_weights/{name}") if h.step == iteration]
            assert len(histogram) == 1 and histogram[0].histogram_value.num == kept
    mask = torch.load(run_dir / "mask.pt", weights_only=True)
    assert counts[12] == {k: int(v.sum()) for k, v in mask.items()}  # the kept weights are the mask's


def test_an_offline_wandb_run_holds_the_series_config_and_summary(cli, monkeypatch):
    pytest.importorskip("wandb")
    from tests.platforms.wandb_log import history, records, run_record, summary

    monkeypatch.setenv("WANDB_MODE", "offline")
    argv = ["train", *TINY, SAVES]
    code, _, err = cli(*argv, "--log_to=wandb")
    assert code == 0, err
    run_dir = location(cli, *argv)
    [log_file] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    log = records(log_file)
    run = run_record(log)
    assert run.display_name == str(run_dir.relative_to(cli.root))
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    hparams = json.loads((run_dir / "hparams.json").read_text())
    assert config["hash"] == hparams["hash"] and config["training.lr"] == hparams["hparams"]["training"]["lr"]
    rows = history(log)
    for name, points in series(run_dir).items():
        assert [(i, rows[i][name]) for i, _ in points] == points
    for iteration, layers in kept_counts(run_dir).items():
        for name, kept in layers.items():
            assert sum(rows[iteration][f"kept_weights/{name}/values"]) == kept
    done = json.loads((run_dir / "done.json").read_text())
    found = summary(log)
    assert found["final/test_accuracy"] == done["metrics"]["test_accuracy"]
    assert found["compute/forward_flops"] == done["compute"]["forward_flops"]


def test_an_unknown_sink_is_one_line_and_nothing_is_trained(cli):
    code, out, err = cli("train", *TINY, "--log_to=tensorboard,mlflow")
    assert code == 2 and err.count("\n") == 1, err
    assert "unknown sink 'mlflow'" in err and "tensorboard, wandb" in err
    assert not cli.root.exists() or not list(cli.root.rglob("done.json"))
