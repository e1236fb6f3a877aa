"""The ViT table of docs/post-training.md from the runs experiments/post_training_vit.sh made: test
accuracy (%) of every oneshot run of the fashionmnist_vit_2_32_p7 trunks, before fine-tune and
after, mean [min, max] over replicates, per pattern (rows) and strategy (columns).

    python experiments/post_training_table.py [ROOT]          (default /tmp/transformers/root)
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/transformers/root")
MODEL = "fashionmnist_vit_2_32_p7"
STRATEGIES = ["random", "magnitude", "wanda", "sparsegpt"]


def pattern(oneshot: dict) -> str:
    if oneshot.get("structure"):
        return oneshot["structure"]
    scope = oneshot.get("prune_scope") or "layerwise"
    return f"{round(100 * oneshot['prune_fraction'])}% ({scope})"


def cell(values: list[float]) -> str:
    if not values:
        return ""
    mean = 100 * sum(values) / len(values)
    return f"{mean:.2f} [{100 * min(values):.2f}, {100 * max(values):.2f}]"


def main() -> None:
    before, after = defaultdict(list), defaultdict(list)
    dense = []
    for hparams_file in sorted(ROOT.glob("train_*/replicate_*/*/hparams.json")):
        stored = json.loads(hparams_file.read_text())["hparams"]
        if stored["model"]["model_name"] != MODEL:
            continue
        done_file = hparams_file.parent / "done.json"
        if not done_file.exists():
            continue
        metrics = json.loads(done_file.read_text())["metrics"]
        if "oneshot" not in stored:
            dense.append(metrics["test_accuracy"])
            continue
        oneshot = stored["oneshot"]
        key = (pattern(oneshot), oneshot["strategy"])
        before[key].append(metrics["pruned_test_accuracy"])
        if oneshot.get("finetune_steps") not in (None, "0"):
            after[key].append(metrics["test_accuracy"])
    print(f"dense trunks: {cell(dense)} (n={len(dense)})\n")
    for title, table in (("no fine-tune", before), ("after 100 steps of fine-tune", after)):
        patterns = sorted({p for p, _ in table}, key=lambda p: (p[0].isdigit() and ":" not in p, p))
        print(f"{title}:\n\n| pattern | " + " | ".join(STRATEGIES) + " |\n|---|" + "---:|" * len(STRATEGIES))
        for p in patterns:
            print(f"| {p} | " + " | ".join(cell(table.get((p, s), [])) for s in STRATEGIES) + " |")
        print()


if __name__ == "__main__":
    main()
