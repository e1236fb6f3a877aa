"""`report`: a grid of runs over replicates aggregated into Markdown, a tidy CSV and figures; the
numbers checked against numpy/scipy on the runs' own files."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reports.stats import summarize
from tests.reports.test_root import BASE, FLAGS, Root, colours, run_cli

pandas = pytest.importorskip("pandas")


def report(root: Root, out: Path, *argv: str) -> str:
    code, stdout, err = run_cli("report", *root.argv(*argv), f"--out={out}")
    assert code == 0, err
    return (out / "report.md").read_text()


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """{section title: rows as {column: cell}} of every Markdown table in the report."""
    found, title, header = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            title, header = line[3:], None
        elif line.startswith("| ") and header is None:
            header = [c.strip() for c in line.strip("|").split("|")]
            found[title] = []
        elif line.startswith("| "):
            found[title].append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return found


def accuracy(directory: Path) -> float:
    return json.loads((directory / "done.json").read_text())["metrics"]["test_accuracy"]


def best(directory: Path) -> float:
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    return max(r["value"] for r in map(json.loads, lines) if r["name"] == "test_accuracy")


def expected_cells(values: list[float]) -> tuple[str, str]:
    """'mean ± std' and '[low, high]' by numpy and scipy."""
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=mean, scale=std / math.sqrt(len(values)))
    return f"{mean:.4f} ± {std:.4f}", f"[{low:.4f}, {high:.4f}]"


def test_summary_matches_scipy():
    values = [0.91, 0.88, 0.93, 0.9, 0.87]
    s = summarize(values)
    low, high = scipy_stats.t.interval(0.95, 4, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert (s.n, s.mean, s.std) == (5, pytest.approx(np.mean(values)), pytest.approx(np.std(values, ddof=1)))
    assert (s.low, s.high) == (pytest.approx(low), pytest.approx(high))
    assert summarize([0.5]).n == 1 and math.isnan(summarize([0.5]).low)
    assert summarize([]).n == 0 and summarize([float("nan"), 0.4]).n == 1


@pytest.fixture(scope="module")
def iterative(reports_root, tmp_path_factory) -> Path:
    """The output directory of one iterative report over both replicates, shared by the tests."""
    out = tmp_path_factory.mktemp("iterative_report")
    report(reports_root, out, "branch", "iterative", *BASE, "--levels=2", "--replicates=1-2")
    return out


def test_iterative_report_against_numpy_and_scipy(reports_root, iterative):
    text = (iterative / "report.md").read_text()
    rows = tables(text)["branch iterative"]
    assert [row["level"] for row in rows] == ["0", "1", "2"]
    for level, row in enumerate(rows):
        tickets = [reports_root.dirs[f"iterative{r}"] / f"level_{level}" for r in (1, 2)]
        controls = [reports_root.dirs[f"control{r}"] / f"level_{level}" for r in (1, 2)]
        mean_std, interval = expected_cells([accuracy(d) for d in tickets])
        assert (row["test accuracy"], row["95% interval"]) == (mean_std, interval)
        metrics_dirs = [reports_root.dirs[f"trunk{r}"] for r in (1, 2)] if level == 0 else tickets
        mean_std, interval = expected_cells([best(d) for d in metrics_dirs])
        assert (row["best test accuracy"], row["best: 95% interval"]) == (mean_std, interval)
        assert row["control=reinit"] == " ".join(expected_cells([accuracy(d) for d in controls]))
        density = np.mean([json.loads((d / "sparsity.json").read_text())["density"] for d in tickets])
        assert row["density"] == f"{density:.4f}" and row["n"] == "2"
    assert "control=sign" not in text  # controls without runs get no column
    assert "Missing" not in text


def test_tidy_csv_has_one_row_per_run_and_reads_back_with_pandas(iterative):
    frame = pandas.read_csv(iterative / "runs.csv")
    assert len(frame) == 12 and sorted(set(frame["role"])) == ["control=reinit", "main"]
    assert list(frame.columns[:3]) == ["role", "series", "level"]
    for row in frame.itertuples():
        assert row.final_test_accuracy == accuracy(Path(row.path))
        assert row.density == json.loads((Path(row.path) / "sparsity.json").read_text())["density"]
        assert Path(row.path).name == f"level_{row.level}" and row.status == "done"
    grouped = frame[frame.role == "main"].groupby("level")["final_test_accuracy"]
    markdown = tables((iterative / "report.md").read_text())["branch iterative"]
    for level, row in enumerate(markdown):
        assert row["test accuracy"].startswith(f"{grouped.mean()[level]:.4f} ± {grouped.std()[level]:.4f}")


def test_missing_runs_are_listed_with_the_command_that_makes_them(reports_root, tmp_path):
    text = report(reports_root, tmp_path, "branch", "iterative", *BASE, "--levels=2", "--replicates=1-3")
    lines = [line for line in text.splitlines() if line.startswith("- `python open_prune.py")]
    assert len(lines) == 2  # the tickets and the control of replicate 3
    commands = [shlex.split(line.split("`")[1]) for line in lines]
    assert all(c[:2] == ["python", "open_prune.py"] and "--replicate=3" in c for c in commands)
    assert {c[3] for c in commands} == {"iterative", "reinitialize"}
    assert all("missing: levels 0, 1, 2" in line for line in lines)
    code, out, _ = run_cli(*commands[0][2:], "--display_output_location")
    assert code == 0
    made = Path(out.strip())  # exactly the directory the report looked for
    assert made.parent.name == "replicate_3" and made.name == reports_root.dirs["iterative1"].name
    assert not made.exists()  # reading never made it
    rows = tables(text)["branch iterative"]
    assert all(row["n"] == "2" for row in rows)  # means over the replicates that exist


def test_oneshot_grid_with_its_random_control(reports_root, tmp_path):
    text = report(reports_root, tmp_path, "branch", "oneshot", *BASE, "--strategy=magnitude",
                  "--prune_fraction=0.5,0.8", "--replicates=1-2")
    reference, *rows = tables(text)["branch oneshot"]
    trunks = [accuracy(reports_root.dirs[f"trunk{r}"]) for r in (1, 2)]  # the dense reference row
    assert reference["prune_fraction"] == "dense (trunk)" and reference["density"] == "1.0000"
    assert (reference["test accuracy"], reference["95% interval"]) == expected_cells(trunks)
    assert [row["prune_fraction"] for row in rows] == ["0.5", "0.8"]
    for row, fraction in zip(rows, ("0.5", "0.8")):
        runs = [reports_root.dirs[f"oneshot{fraction}_{r}"] for r in (1, 2)]
        assert row["test accuracy"] == expected_cells([accuracy(d) for d in runs])[0]
    random = [accuracy(reports_root.dirs[f"random0.5_{r}"]) for r in (1, 2)]
    assert rows[0]["strategy=random"] == " ".join(expected_cells(random))
    assert rows[1]["strategy=random"] == "-"  # no random control at 0.8
    assert "randomize_layerwise" not in rows[0] and "reinitialize" not in rows[0]
    missing = [shlex.split(line.split("`")[1]) for line in text.splitlines() if line.startswith("- `")]
    assert len(missing) == 2
    assert all("--strategy=random" in c and "--strategy=magnitude" not in c and "--prune_fraction=0.8" in c
               for c in missing)  # the control's own command line


def test_a_train_grid_reports_each_configuration_and_unfinished_runs(reports_root, tmp_path):
    text = report(reports_root, tmp_path, "train", *FLAGS, "--lr=0.01,0.02", "--training_steps=2ep,3ep",
                  "--replicates=1-2")
    found = tables(text)
    assert list(found) == ["lr=0.01, training_steps=2ep", "lr=0.01, training_steps=3ep",
                           "lr=0.02, training_steps=2ep", "lr=0.02, training_steps=3ep"]
    trunks = [accuracy(reports_root.dirs[f"trunk{r}"]) for r in (1, 2)]
    assert found["lr=0.01, training_steps=2ep"][0]["test accuracy"] == expected_cells(trunks)[0]
    assert found["lr=0.02, training_steps=3ep"][0]["n"] == "0"
    partial = [line for line in text.splitlines() if "--lr=0.02" in line and "--training_steps=3ep" in line
               and "--replicate=1" in line]
    assert len(partial) == 1 and partial[0].endswith("(partial)")
    assert not (tmp_path / "accuracy_vs_density.png").exists()  # every trunk is dense


def test_figures_are_real_pictures(iterative):
    from PIL import Image

    for name in ("accuracy_vs_density", "accuracy_vs_iteration"):
        with Image.open(iterative / f"{name}.png") as image:
            assert image.size[0] > 400 and image.size[1] > 300
        assert len(colours(iterative / f"{name}.png")) > 20  # lines, bands, text: not a blank canvas
        assert (iterative / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_the_default_output_is_a_reports_directory_under_the_root(reports_root):
    code, out, err = run_cli("report", *reports_root.argv("branch", "iterative", *BASE, "--levels=2"))
    assert code == 0, err
    written = Path(out.strip().splitlines()[-1].split("wrote ")[1].split(", ")[0])
    assert written.name == "report.md" and written.parent.parent == reports_root.path / "reports"
    assert written.parent.name.startswith("branch-iterative-")


def test_the_figure_title_overlaps_no_panel_title(reports_root, tmp_path, monkeypatch):
    from reports import report_plots

    figures = []
    real_save = report_plots.save

    def keep(fig, stem):
        fig.canvas.draw()
        suptitle = fig.get_suptitle() and fig._suptitle.get_window_extent()
        figures.append((suptitle, [ax.title.get_window_extent() for ax in fig.axes if ax.get_title()],
                        [ax.get_window_extent() for ax in fig.axes if ax.axison]))
        return real_save(fig, stem)

    monkeypatch.setattr(report_plots, "save", keep)
    report(reports_root, tmp_path, "branch", "iterative", *BASE, "--levels=2", "--replicates=1-2")
    titled = [figure for figure in figures if figure[0]]  # accuracy_vs_iteration's panels under one title
    assert len(figures) == 2 and len(titled) == 1
    for suptitle, titles, panels in titled:
        assert titles and not any(suptitle.overlaps(box) for box in titles + panels)


def test_level_0_of_a_control_is_the_trunk_and_is_never_called_missing(reports_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    for name in ("trunk1", "iterative1", "control1", "trunk2", "iterative2"):  # replicate 2 has no control yet
        source = reports_root.dirs[name]
        shutil.copytree(source, root / source.relative_to(reports_root.path))
    text = report(Root(root, reports_root.datasets, {}), tmp_path / "out", "branch", "iterative", *BASE,
                  "--levels=2", "--replicates=1-2")
    missing = [line for line in text.splitlines() if line.startswith("- `python open_prune.py")]
    assert len(missing) == 1 and "reinitialize" in missing[0] and "--replicate=2" in missing[0]
    assert "missing: levels 1, 2" in missing[0]


def test_the_density_figure_draws_any_number_of_controls(tmp_path):
    from types import SimpleNamespace

    from reports import report_plots
    from reports.report_tables import Row
    from reports.stats import summarize

    roles = ["main", *(f"control={c}" for c in ("reinit", "shuffle_layerwise", "shuffle_global", "sign", "x"))]
    experiment = SimpleNamespace(series=lambda: ["iterative"], roles=roles)
    rows = [Row("iterative", level, density, summarize([0.8, 0.9]), summarize([0.8, 0.9]),
                {role: summarize([0.7, 0.75]) for role in roles[1:]}) for level, density in ((0, 1.0), (1, 0.8))]
    written = report_plots.accuracy_vs_density(experiment, rows, tmp_path / "figure", "six roles")
    assert [path.suffix for path in written] == [".png", ".pdf"] and len(colours(written[0])) > 20
