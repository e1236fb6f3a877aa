"""`runs`, `report` and `tree` lead with test perplexity for language models (lower is better), on
real run directories of a tiny GPT trained through the CLI; classifiers keep their columns."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

import datasets.registry
import open_prune
from reports import listing, report_plots
from reports.metric import ACCURACY, PERPLEXITY
from reports.readers import read_metrics, series
from reports.rundirs import find_runs

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog.\n%\n" for i in range(300))
TINY = ["--default_hparams=fortunes_gpt_1_16_h2_c16", "--batch_size=8", "--training_steps=8it",
        "--warmup_steps=2it", "--context_length=16", "--eval_every=4it", "--num_threads=1", "--quiet"]
GRID = ["branch", "oneshot", *TINY, "--strategy=magnitude", "--prune_fraction=0.5,0.75"]


@pytest.fixture(scope="module")
def lm_root(tmp_path_factory):
    """A trunk, magnitude at 0.5 and 0.75 and its random control, all trained through the CLI."""
    root = tmp_path_factory.mktemp("lm")
    (root / "fortunes").mkdir()
    (root / "fortunes" / "a").write_text(TEXT)
    datasets.registry.clear_cache()

    def cli(*argv):
        assert open_prune.main([*argv, f"--root={root / 'runs'}", f"--dataset_root={root}", "--device=cpu"]) == 0

    for strategy in ("magnitude", "random"):
        for fraction in ("0.5", "0.75"):
            cli("branch", "oneshot", *TINY, f"--strategy={strategy}", f"--prune_fraction={fraction}")
    return root


def done_metrics(directory):
    return json.loads((directory / "done.json").read_text())["metrics"]


def run(capsys, *argv):
    code = open_prune.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_rundirs_read_perplexity_and_listing_puts_it_where_accuracy_was(lm_root):
    runs = find_runs(lm_root / "runs")
    rows = listing.rows(runs)
    assert len(rows) == 5
    for row, found in zip(rows, runs):
        metrics = done_metrics(found.path)
        assert row["test_perplexity"] == pytest.approx(metrics["test_perplexity"])
        assert row["test_perplexity"] == pytest.approx(math.exp(metrics["test_loss"]))
    at = listing.TRAILING.index("test_accuracy")
    assert listing.trailing(rows)[at] == "test_perplexity" and "test_accuracy" not in listing.trailing(rows)
    assert listing.trailing(rows, every=True)[at:at + 2] == ["test_accuracy", "test_perplexity"]
    classifier = [{"test_accuracy": 0.9, "test_perplexity": None}]
    assert listing.trailing(classifier) == listing.TRAILING == listing.trailing(classifier, every=True)
    assert listing.trailing(rows + classifier)[at:at + 2] == ["test_accuracy", "test_perplexity"]


def test_the_runs_frame_has_the_perplexity_column(lm_root):
    pytest.importorskip("pandas")
    from api.frames import runs

    frame = runs(lm_root / "runs")
    for _, row in frame.iterrows():
        assert row["test_perplexity"] == pytest.approx(done_metrics(lm_root / "runs" / row["run"])["test_perplexity"])


def test_tree_shows_ppl(lm_root, capsys):
    out = run(capsys, "tree", f"--root={lm_root / 'runs'}")
    trunk = next(found for found in find_runs(lm_root / "runs") if found.is_trunk)
    assert f"ppl {done_metrics(trunk.path)['test_perplexity']:.4f}" in out and " acc " not in out


def test_report_leads_with_perplexity_lower_is_better(lm_root, tmp_path, capsys):
    out_dir = tmp_path / "report"
    run(capsys, "report", *GRID, "--replicate=1", f"--root={lm_root / 'runs'}", f"--out={out_dir}")
    text = (out_dir / "report.md").read_text()
    assert "| test perplexity (lower is better) |" in text and "best test perplexity" in text
    assert "test accuracy" not in text
    found = {found.hparams.get("oneshot", {}).get("prune_fraction"): found for found in find_runs(lm_root / "runs")
             if found.kind == "branch_oneshot" and found.hparams["oneshot"]["strategy"] == "magnitude"}
    lines = text.splitlines()
    for fraction, branch in found.items():  # the table's cells are each run's own perplexity (one replicate)
        line = next(line for line in lines if line.startswith(f"| {fraction:g} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == f"{done_metrics(branch.path)['test_perplexity']:.4f} (n=1)"
        best = min(v for _, v in series(read_metrics(branch.path / "metrics.jsonl"), "test_perplexity"))
        assert cells[5] == f"{best:.4f} (n=1)"
    trunk = next(found for found in find_runs(lm_root / "runs") if found.is_trunk)
    dense = next(line for line in lines if line.startswith("| dense (trunk) |"))
    assert f"{done_metrics(trunk.path)['test_perplexity']:.4f}" in dense
    with open(out_dir / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4  # 2 magnitude, 2 random (the trunk is the table's reference row)
    for row in rows:
        metrics = done_metrics(Path(row["path"]))
        assert float(row["final_test_perplexity"]) == pytest.approx(metrics["test_perplexity"])
    names = sorted(path.name for path in out_dir.iterdir())
    assert "perplexity_vs_density.png" in names and "perplexity_vs_iteration.png" in names
    assert not any(name.startswith("accuracy_vs") for name in names)


def test_the_plots_say_lower_is_better(lm_root, monkeypatch, tmp_path):
    from reports.experiment import build
    from reports.report_tables import lead_metric, summary_rows
    from runs.target import parse_target

    target, rest = parse_target([*GRID, "--replicate=1", f"--root={lm_root / 'runs'}"], "report")
    experiment = build(target, rest)
    assert lead_metric(experiment) is PERPLEXITY
    labels = []
    monkeypatch.setattr(report_plots, "save",
                        lambda fig, stem: labels.append((stem.name, [ax.get_ylabel() for ax in fig.axes])) or [stem])
    report_plots.accuracy_vs_density(experiment, summary_rows(experiment), tmp_path / "accuracy_vs_density", "t")
    report_plots.accuracy_vs_iteration(experiment, tmp_path / "accuracy_vs_iteration", "t")
    assert labels[0] == ("perplexity_vs_density", ["final test perplexity (lower is better)"])
    assert labels[1][0] == "perplexity_vs_iteration" and labels[1][1][0] == "test perplexity (lower is better)"
    assert ACCURACY.header == "test accuracy"


def test_runs_lists_perplexity_in_place_of_accuracy(lm_root, capsys):
    out = run(capsys, "runs", f"--root={lm_root / 'runs'}")
    header = out.splitlines()[0].split()
    assert "test_perplexity" in header and "test_accuracy" not in header
    trunk = next(found for found in find_runs(lm_root / "runs") if found.is_trunk)
    assert f"{done_metrics(trunk.path)['test_perplexity']:.4f}" in out
    csv_out = run(capsys, "runs", f"--root={lm_root / 'runs'}", "--format=csv")
    columns = csv_out.splitlines()[0].split(",")
    assert columns.index("test_perplexity") == columns.index("test_accuracy") + 1
