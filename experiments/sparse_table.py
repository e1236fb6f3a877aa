"""The measured table of docs/sparse-training.md, through `report`: one `report` per method over the
grid that experiments/sparse_fashion_grid.sh trained, then one Markdown table of their runs.csv
(mean ± std of the final test accuracy over replicates, per target density; the density measured
over all prunable weights, output layer included; training FLOPs over the dense trunk's).

    python experiments/sparse_table.py [ROOT] [TRAINING_STEPS] [MODEL] [EXTRA_FLAGS]
    (default /tmp/sparse/root 3ep fashionmnist_lenet_300_100; the flags follow sparse_fashion_grid.sh's)
"""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/sparse/root")
STEPS = sys.argv[2] if len(sys.argv) > 2 else "3ep"
MODEL = sys.argv[3] if len(sys.argv) > 3 else "fashionmnist_lenet_300_100"
EXTRA = sys.argv[4].split() if len(sys.argv) > 4 else []
COMMON = [f"--default_hparams={MODEL}", f"--training_steps={STEPS}", *EXTRA, "--replicate=1-3", f"--root={ROOT}"]
# LeNet-5's recipe prunes every layer: the grid keeps its output layer dense and allocates its first conv
LENET5 = MODEL.endswith("lenet5")
IGNORE = ["--prune_layers_to_ignore=fc.weight"] if LENET5 else []
SPARSE_LAYERS = ["--first_layer=allocated", "--output_layer=dense"] if LENET5 else []
DENSITIES = [0.2, 0.1, 0.05, 0.02]
IMP_LEVELS = {7: 0.2, 10: 0.1, 13: 0.05, 17: 0.02}  # 0.7937^L: 0.198, 0.099, 0.049, 0.0195
GRID = ",".join(map(str, DENSITIES))

REPORTS = {  # row label: (report command, how a runs.csv row maps to a target density, or None to skip)
    "dense (trunk)": (["train"], lambda r: "dense"),
    "IMP ticket (iterative)": (["branch", "iterative", "--pruning_fraction=0.2063", "--levels=17", *IGNORE],
                               lambda r: IMP_LEVELS.get(int(r["level"])) if r.get("level") not in (None, "") else None),
    "SNIP at init (oneshot snip10)": (["branch", "oneshot", "--strategy=snip10", "--prune_layers_to_ignore=fc.weight",
                                       "--prune_fraction=0.8,0.9,0.95,0.98"],
                                      lambda r: round(1 - float(r["prune_fraction"]), 4)),
    "static random ERK (static-sparse)": (["branch", "static-sparse", *SPARSE_LAYERS, f"--train_density={GRID}"],
                                          lambda r: float(r["train_density"])),
    "GMP (gmp, uniform)": (["branch", "gmp", *SPARSE_LAYERS, f"--final_density={GRID}"],
                           lambda r: float(r["final_density"])),
    "SET (set, ERK)": (["branch", "set", *SPARSE_LAYERS, f"--train_density={GRID}"],
                       lambda r: float(r["train_density"])),
    "RigL (rigl, ERK)": (["branch", "rigl", *SPARSE_LAYERS, f"--train_density={GRID}"],
                         lambda r: float(r["train_density"])),
}


def report(words: list[str], out: Path) -> list[dict]:
    command = [sys.executable, "open_prune.py", "report", *words, *COMMON, f"--out={out}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(out / "runs.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["role"] == "main" and row["status"] == "done"]
    return rows


def forward_ratio(directory: Path) -> float:
    """A run's forward FLOPs under its mask over the dense network's (done.json's compute record);
    for an MLP this is its density, for a conv net each layer's density weighted by its FLOPs."""
    compute = json.loads((directory / "done.json").read_text())["compute"]
    return compute["forward_flops"] / compute["forward_flops_dense"]


def flops_ratio(path: str) -> float | None:
    """Training FLOPs over the dense trunk's: the sparse branches' own count (branch_done.json); for
    the others, from their forward FLOPs under the mask over the dense network's (training/flops.py
    counts each layer's dense FLOPs times its density), since every run sees the same examples:
    SNIP trains once under its mask, the IMP ticket at level L has cost the training of levels 0
    (the trunk) to L."""
    directory = Path(path)
    marker = directory / "branch_done.json"
    if marker.exists():
        headline = dict(json.loads(marker.read_text()).get("headline", []))
        if "train FLOPs / dense" in headline:
            return headline["train FLOPs / dense"]
    if directory.name.startswith("level_"):
        level = int(directory.name.split("_")[1])
        return 1.0 + sum(forward_ratio(directory.parent / f"level_{i}") for i in range(1, level + 1))
    return forward_ratio(directory) if (directory / "done.json").exists() else None


CHANCE = 0.1  # ten classes: a run that never leaves chance predicts one class


def cell(values: list[float]) -> str:
    """mean ± std (n), and how many of the runs stayed at chance (a network that never trained)."""
    if not values:
        return "-"
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    at_chance = sum(abs(value - CHANCE) < 0.005 for value in values)
    chance = f", {at_chance} at chance" if at_chance else ""
    return f"{100 * mean:.2f} ± {100 * spread:.2f} (n={len(values)}{chance})"


PAIRS = [("RigL (rigl, ERK)", "SET (set, ERK)"), ("SET (set, ERK)", "static random ERK (static-sparse)"),
         ("RigL (rigl, ERK)", "static random ERK (static-sparse)"), ("RigL (rigl, ERK)", "IMP ticket (iterative)"),
         ("RigL (rigl, ERK)", "GMP (gmp, uniform)")]


def paired(results: dict[str, dict[object, list[dict]]]) -> list[str]:
    """Per-replicate differences in test accuracy (points): static, SET and RigL of one replicate
    share the trunk, the initial mask and the data order, so the pairs are like for like."""
    lines = ["| difference (points, mean ± std over replicates) | " + " | ".join(f"d = {d}" for d in DENSITIES) + " |",
             "|---|" + "---:|" * len(DENSITIES)]
    for a, b in PAIRS:
        cells = []
        for d in DENSITIES:
            left = {r["replicate"]: float(r["final_test_accuracy"]) for r in results[a].get(d, [])}
            right = {r["replicate"]: float(r["final_test_accuracy"]) for r in results[b].get(d, [])}
            diffs = [100 * (left[k] - right[k]) for k in sorted(left.keys() & right.keys())]
            spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            wins = sum(x > 0 for x in diffs)
            cells.append(f"{statistics.mean(diffs):+.2f} ± {spread:.2f} ({wins}/{len(diffs)} > 0)" if diffs else "-")
        lines.append(f"| {a.split(' (')[0]} − {b.split(' (')[0]} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    out = ROOT / "reports" / "sparse_table"
    results: dict[str, dict[object, list[dict]]] = {}
    header = ["method", *(f"d = {d}" for d in DENSITIES), "density measured (all layers)", "train FLOPs / dense"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, (words, key) in REPORTS.items():
        rows = report(words, out / words[-1 if words[0] == "train" else 1])
        by_density: dict[object, list[dict]] = {}
        for row in rows:
            target = key(row)
            if target is not None:
                by_density.setdefault(target, []).append(row)
        results[label] = by_density
        if label.startswith("dense"):
            dense = [float(r["final_test_accuracy"]) for r in by_density.get("dense", [])]
            lines.append(f"| {label} | " + " | ".join([cell(dense)] * len(DENSITIES)) + " | 1 | 1 |")
            continue
        accuracy = [cell([float(r["final_test_accuracy"]) for r in by_density.get(d, [])]) for d in DENSITIES]
        measured = " / ".join(f"{statistics.mean(float(r['density']) for r in by_density[d]):.4f}"
                              if by_density.get(d) else "-" for d in DENSITIES)
        ratios = [flops_ratio(r["path"]) for d in DENSITIES for r in by_density.get(d, [])]
        ratios_by_d = [[flops_ratio(r["path"]) for r in by_density.get(d, [])] for d in DENSITIES]
        flops = (" / ".join(f"{statistics.mean(v):.3f}" for v in ratios_by_d if v and None not in v)
                 if ratios and None not in ratios else "-")
        lines.append(f"| {label} | " + " | ".join(accuracy) + f" | {measured} | {flops} |")
    print("\n".join([*lines, "", *paired(results)]))


if __name__ == "__main__":
    main()
