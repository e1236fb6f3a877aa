"""The tables and figure of docs/representations.md, from the runs that
experiments/representations_table.sh makes: for each replicate, `representations` compares the
dense trunk with every level of the IMP branch and of its reinit control; this script averages the
matched layers (a layer against the same layer of the trunk) over the replicates, and the per-class
"pruning identified exemplars" at chosen levels.

    python experiments/representations_table.py [ROOT] [TRAINING_STEPS] [OUT] [--docs]

writes OUT/table.md (with the commands it ran and how long each took), OUT/representations_cka.png
and OUT/representations_heatmap.png (with --docs also both figures in docs/), and prints the tables.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reports.figures import plt  # noqa: E402  (after the path: run as a script from anywhere)
from reports.representations import heatmaps, matrix  # noqa: E402

REPLICATES = (1, 2, 3)
LEVELS = list(range(1, 18))
SHOWN_LEVELS = (1, 3, 5, 7, 10, 13, 17)  # densities 0.79 ... 0.023
FORGOTTEN_LEVELS = (10, 17)
HEATMAP_LEVEL = 10  # replicate 1's every-layer-against-every-layer heatmap, IMP and reinit side by side
DENSITY_TICKS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
PAIRS = ((1, 2), (2, 3), (3, 1))  # the baseline: a dense trunk against another replicate's
LAYERS = ("fc_layers.0", "fc_layers.1", "fc")
LAYER_NAMES = {"fc_layers.0": "hidden 1 (300)", "fc_layers.1": "hidden 2 (100)", "fc": "logits (10)"}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DOCS_FIGURE = REPO / "docs" / "representations_cka.png"
DOCS_HEATMAP = REPO / "docs" / "representations_heatmap.png"
AXIS_LABELS = {"cka": "linear CKA with the dense trunk", "procrustes": "Procrustes distance to the trunk"}
KINDS = {"imp": ["branch", "iterative", "--pruning_fraction=0.2063", "--levels=17"],
         "reinit": ["branch", "reinitialize", "--pruning_fraction=0.2063", "--levels=17", "--control=reinit"]}


def open_prune(*argv: str) -> str:
    done = subprocess.run([sys.executable, "open_prune.py", *argv], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"open_prune.py {' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


def representations(argv: list[str], out: Path, commands: list[tuple[str, float]]) -> dict:
    """The JSON that `representations` prints for `argv`, its files under `out`; kept in out/result.json
    and read from there on a rerun (the comparison is deterministic: delete OUT to recompute)."""
    kept = out / "result.json"
    if not kept.is_file():
        _compute(argv, out, kept)
    result = json.loads(kept.read_text())
    commands.append(("python open_prune.py representations " + " ".join(argv), result["seconds"]))
    return result


def _compute(argv: list[str], out: Path, kept: Path) -> None:
    started = time.time()
    result = json.loads(open_prune("representations", *argv, "--format=json", "--num_threads=1", "--device=cpu",
                                   f"--out={out}"))
    result["seconds"] = time.time() - started
    kept.write_text(json.dumps(result))


def location(root: str, steps: str, replicate: int, command: list[str]) -> Path:
    common = ["--default_hparams=fashionmnist_lenet_300_100", f"--training_steps={steps}", f"--root={root}"]
    return Path(open_prune(*command, *common, f"--replicate={replicate}", "--display_output_location").strip())


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.3f} ± {std:.3f}"


def lost_and_gained(row: dict) -> tuple[float, float]:
    """A class's share of examples that A gets right and B wrong, and the reverse."""
    return row["forgotten"], row["b_only"] / row["examples"]


def shares(pairs: list[tuple[float, float]]) -> str:
    lost, gained = (statistics.fmean(p[i] for p in pairs) for i in (0, 1))
    return f"{lost:.3f} / {gained:.3f}"


def main(argv: list[str]) -> int:
    docs = "--docs" in argv
    argv = [a for a in argv if a != "--docs"]
    root, steps, out = (argv + [None] * 3)[:3]
    root, steps, out = root or "/tmp/sparse/root", steps or "3ep", Path(out or "/tmp/representations")
    out.mkdir(parents=True, exist_ok=True)
    # results[kind][level][layer] -> {cka: [per replicate], procrustes: [...]}; accuracy[kind][level]
    results: dict = {kind: {} for kind in KINDS}
    accuracy: dict = {kind: {} for kind in KINDS}
    forgotten: dict = {kind: {} for kind in KINDS}
    density: dict = {}
    baseline: dict = {layer: {"cka": [], "procrustes": []} for layer in LAYERS}
    heatmap_rows: dict = {}
    baseline_forgotten: dict = {}  # class -> [(forgotten, gained)] of a trunk against another replicate's
    commands: list[tuple[str, float]] = []
    trunks = {replicate: location(root, steps, replicate, ["train"]) for replicate in REPLICATES}
    for first, second in PAIRS:
        pair = representations([str(trunks[first]), str(trunks[second])], out / f"dense_{first}_vs_{second}", commands)
        for row in pair["exemplars"]:
            if row["class"] != "all":
                baseline_forgotten.setdefault(row["class"], []).append(lost_and_gained(row))
        for row in pair["similarity"]:
            if row["layer_a"] == row["layer_b"]:
                baseline[row["layer_a"]]["cka"].append(row["cka"])
                baseline[row["layer_a"]]["procrustes"].append(row["procrustes"])
    for replicate in REPLICATES:
        trunk = trunks[replicate]
        for kind, command in KINDS.items():
            branch = location(root, steps, replicate, command)
            result = representations([str(trunk), str(branch), f"--levels={','.join(map(str, LEVELS))}"],
                                     out / f"{kind}_replicate_{replicate}", commands)
            if replicate == REPLICATES[0]:
                heatmap_rows[kind] = [row for row in result["similarity"] if row["b"] == f"level_{HEATMAP_LEVEL}"]
            for row in result["similarity"]:
                if row["layer_a"] != row["layer_b"]:
                    continue
                level = int(row["b"].removeprefix("level_"))
                slot = results[kind].setdefault(level, {}).setdefault(row["layer_a"], {"cka": [], "procrustes": []})
                slot["cka"].append(row["cka"])
                slot["procrustes"].append(row["procrustes"])
            for row in result["exemplars"]:
                level = int(row["b"].removeprefix("level_"))
                if row["class"] == "all":
                    accuracy[kind].setdefault(level, []).append(row["accuracy_b"])
                    if kind == "imp" and level == LEVELS[0]:
                        accuracy.setdefault("dense", []).append(row["accuracy_a"])
                else:
                    forgotten[kind].setdefault(level, {}).setdefault(row["class"], []).append(lost_and_gained(row))
            for level in LEVELS:
                sparsity = json.loads((branch / f"level_{level}" / "sparsity.json").read_text())
                density[level] = sparsity["density"]

    lines = [f"Matched layers against the dense trunk (mean ± std over replicates {REPLICATES}, "
             f"{result['examples']} test examples); `imp` = the IMP level, `reinit` = its reinit control.", ""]
    for measure, what in (("cka", "linear CKA (1 = the same up to rotation and scale)"),
                          ("procrustes", "orthogonal Procrustes distance (0 = the same)")):
        lines += [f"**{what}**", ""]
        header = ["level", "density", *(f"{LAYER_NAMES[layer]} {kind}" for layer in LAYERS for kind in KINDS),
                  *(f"accuracy {kind}" for kind in KINDS)]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for level in SHOWN_LEVELS:
            cells = [str(level), f"{density[level]:.3f}"]
            cells += [cell(results[kind][level][layer][measure]) for layer in LAYERS for kind in KINDS]
            cells += [cell(accuracy[kind][level]) for kind in KINDS]
            lines.append("| " + " | ".join(cells) + " |")
        cells = ["dense, another replicate", "1.000"]
        cells += [cell(baseline[layer][measure]) if kind == "imp" else "" for layer in LAYERS for kind in KINDS]
        lines += ["| " + " | ".join(cells + [cell(accuracy["dense"]), ""]) + " |", ""]
    lines += ["**Per class: share of the test examples the dense trunk gets right and the pruned network wrong "
              "(`forgotten`), and the reverse (`gained`)**, mean over replicates", ""]
    header = ["class", *(f"{kind} level {level} forgotten / gained" for level in FORGOTTEN_LEVELS for kind in KINDS),
              "dense, another replicate"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in [*range(len(CLASSES)), "all"]:
        cells = [CLASSES[label] if label != "all" else "all"]
        for level in FORGOTTEN_LEVELS:
            for kind in KINDS:
                pairs = forgotten[kind][level][label] if label != "all" else None
                if pairs is None:  # the "all" row: the mean over classes (equal class sizes in Fashion-MNIST)
                    pairs = [p for c in range(len(CLASSES)) for p in forgotten[kind][level][c]]
                cells.append(shares(pairs))
        cells.append(shares(baseline_forgotten[label] if label != "all" else
                            [p for c in range(len(CLASSES)) for p in baseline_forgotten[c]]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{len(commands)} representations commands, {sum(t for _, t in commands):.0f} s in all "
              f"(each: loading the runs, a pass over the test set, the measures):", "",
              *(f"    {c}    # {t:.0f} s" for c, t in commands)]
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    print(text)
    figure(results, baseline, density, out / "representations_cka.png", DOCS_FIGURE if docs else None)
    panels = [(f"{kind} level {HEATMAP_LEVEL} (density {density[HEATMAP_LEVEL]:.3f})",
               matrix(heatmap_rows[kind], "cka", list(LAYERS), list(LAYERS)), list(LAYERS)) for kind in KINDS]
    written = heatmaps(panels, list(LAYERS), "cka", out / "representations_heatmap",
                       f"linear CKA, replicate {REPLICATES[0]}: dense trunk (A) against IMP and its reinit control (B)")
    if docs:
        DOCS_HEATMAP.write_bytes(written[0].read_bytes())  # a colour scale: not quantized
    return 0


def small_png(source: Path, target: Path) -> None:
    """A copy for docs/ of a figure of lines: 64 colours, a third of the bytes, the same picture."""
    from PIL import Image

    Image.open(source).convert("RGB").quantize(colors=64).save(target, optimize=True)


def figure(results: dict, baseline: dict, density: dict, path: Path, docs_path: Path | None) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    styles = {"imp": "-", "reinit": "--"}
    colours = dict(zip(LAYERS, ("#1f77b4", "#ff7f0e", "#2ca02c")))
    x = [density[level] for level in LEVELS]
    for ax, measure in zip(axes, ("cka", "procrustes")):
        for kind in KINDS:
            for layer in LAYERS:
                stats = [mean_std(results[kind][level][layer][measure]) for level in LEVELS]
                mean = [m for m, _ in stats]
                low, high = [m - s for m, s in stats], [m + s for m, s in stats]
                ax.plot(x, mean, styles[kind], color=colours[layer], label=f"{LAYER_NAMES[layer]}, {kind}")
                ax.fill_between(x, low, high, color=colours[layer], alpha=0.15, linewidth=0)
        for layer in LAYERS:  # two dense trunks of different replicates: what a new seed alone changes
            ax.axhline(mean_std(baseline[layer][measure])[0], color=colours[layer], linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xticks(DENSITY_TICKS, [f"{t:g}" for t in DENSITY_TICKS])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("density (fraction of weights kept)")
        ax.set_ylabel(AXIS_LABELS[measure])
        ax.grid(alpha=0.3)
    axes[0].plot([], [], ":", color="grey", label="dense trunk vs another replicate's")
    axes[0].legend(fontsize=6)
    fig.suptitle("Fashion-MNIST LeNet-300-100: each layer against the same layer of the dense trunk "
                 "(mean ± std, 3 replicates)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if docs_path is not None:
        small_png(path, docs_path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
