"""The measured tables of docs/transformers.md (vit) and docs/language-models.md (gpt), through
`report`: it runs `open_prune.py report` over the grid that experiments/transformer_vit_lottery.sh or
experiments/transformer_gpt_oneshot.sh trained (writing report.md, runs.csv and the figures under
OUT), then prints one compact Markdown table of the report's own summary (mean ± std over the
replicates; the reinit control, or the dense trunk and the strategies, beside).

    python experiments/transformer_tables.py vit|gpt [ROOT] [OUT]   (default /tmp/transformers/root, ROOT/../reports)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.frames import report  # noqa: E402

WHICH = sys.argv[1] if len(sys.argv) > 1 else "vit"
ROOT = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/transformers/root")
OUT = Path(sys.argv[3] if len(sys.argv) > 3 else ROOT.parent / "reports")
VIT = ["branch", "iterative", "--default_hparams=fashionmnist_vit_2_32_p7", "--training_steps=2ep",
       "--warmup_steps=100it", "--pruning_fraction=0.5", "--levels=5", "--replicate=1-2"]
GPT = ["branch", "oneshot", "--default_hparams=fortunes_gpt_2_64_c64", "--training_steps=600it",
       "--warmup_steps=50it", "--lr=2e-3", "--strategy=magnitude,snip10,random", "--prune_fraction=0.5,0.7,0.9",
       "--replicate=1-2"]
FRACTIONS = (0.5, 0.7, 0.9)


def run_report(words: list[str], out: Path) -> None:
    command = [sys.executable, "open_prune.py", "report", *words, f"--root={ROOT}", f"--out={out}"]
    print("$ python open_prune.py report " + " ".join(words) + f" --root={ROOT} --out={out}", file=sys.stderr)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def cell(mean: float, std: float, digits: int) -> str:
    return "-" if mean != mean else f"{mean:.{digits}f} ± {std:.{digits}f}" if std == std else f"{mean:.{digits}f}"


def vit_table() -> None:
    run_report(VIT, OUT / "vit_lottery")
    frame = report(VIT + [f"--root={ROOT}"])
    control = "control=reinit: test_accuracy"
    print("| level | density | IMP ticket: test accuracy | reinit control: test accuracy | best (IMP) |")
    print("|---:|---:|---:|---:|---:|")
    tidy = report(VIT + [f"--root={ROOT}"], tidy=True)
    for _, row in frame.iterrows():
        level = int(row["level"])
        reinit = tidy[(tidy["role"] == "control=reinit") & (tidy["level"].astype(str) == str(level))]
        reinit_cell = ("(the trunk)" if level == 0 else
                       cell(reinit["final_test_accuracy"].mean(), reinit["final_test_accuracy"].std(), 4)
                       if len(reinit) else cell(row.get(control, float("nan")), float("nan"), 4))
        print(f"| {level} | {row['density']:.4f} | {cell(row['test_accuracy'], row['std'], 4)} | {reinit_cell} | "
              f"{row['best_test_accuracy']:.4f} |")


def gpt_table() -> None:
    run_report(GPT, OUT / "gpt_oneshot")
    frame = report(GPT + [f"--root={ROOT}"])
    dense = report(["train", *GPT[2:6], "--replicate=1-2", f"--root={ROOT}"])
    trunk = dense.iloc[0]
    print("| strategy (at init) | " + " | ".join(f"{f:g} pruned" for f in FRACTIONS) + " |")
    print("|---|" + "---:|" * len(FRACTIONS))
    dense_cell = cell(trunk["test_perplexity"], trunk["std"], 2)
    print(f"| dense trunk (0 pruned) | {dense_cell} |" + " |" * (len(FRACTIONS) - 1))
    for series in dict.fromkeys(frame["series"]):
        mine = frame[frame["series"] == series]
        cells = [cell(r["test_perplexity"], r["std"], 2) for f in FRACTIONS
                 for _, r in mine[(mine["prune_fraction"] - f).abs() < 1e-9].iterrows()]
        print(f"| {series} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    {"vit": vit_table, "gpt": gpt_table}[WHICH]()
