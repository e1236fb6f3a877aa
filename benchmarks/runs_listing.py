"""`open_prune.py runs` over a synthetic root of 1,000 run directories (trunks, oneshot branches
and IMP levels with realistic hparams.json, done.json, sparsity.json, metrics.jsonl; a few
partial, failed and corrupt), written into a temporary directory. Times the whole command in a
fresh process (interpreter start and imports included) and the listing alone in this one.
Goal: under 5 s. Last line: ratio=<command seconds / 5>.

    python benchmarks/runs_listing.py [--runs=1000]
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from branches.lottery import imp  # noqa: E402
from branches.oneshot import oneshot  # noqa: E402
from cli import runs as runs_command  # noqa: E402
from foundations.bundles import TRUNK_BUNDLES  # noqa: E402

GOAL_SECONDS = 5.0
LAYERS = {f"layer{i}.conv.weight": 16 * 16 * 9 * (1 + i // 7) ** 2 for i in range(19)} | {"fc.weight": 640}
EPOCHS = 40


def defaults(cls) -> dict:
    from dataclasses import MISSING, fields
    return {f.name: None if f.default is MISSING else f.default for f in fields(cls)}


def write(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def trunk_hparams(k: int) -> dict:
    dataset, model, training = (defaults(cls) for cls in TRUNK_BUNDLES.values())
    dataset.update(dataset_name="cifar10", batch_size=128)
    model.update(model_name="cifar_resnet_20")
    training.update(optimizer_name="sgd", lr=round(0.01 * (1 + k % 10), 3), training_steps=f"{160 + k // 10}ep",
                    momentum=0.9, weight_decay=1e-4, milestone_steps="80ep,120ep", gamma=0.1)
    return {"dataset": dataset, "model": model, "training": training}


def results(directory: Path, rng: random.Random, density: float, status: str) -> None:
    """The files a result directory holds in the given state."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".lock").write_text("pid 1 on node")
    kept = {name: int(total * density) for name, total in LAYERS.items()}
    write(directory / "sparsity.json", {"total": sum(LAYERS.values()), "unpruned": sum(kept.values()),
                                        "density": sum(kept.values()) / sum(LAYERS.values()),
                                        "layers": {n: {"total": LAYERS[n], "unpruned": kept[n]} for n in LAYERS}})
    epochs = EPOCHS if status == "done" else rng.randrange(1, EPOCHS)
    lines = [json.dumps({"iteration": e * 391, "step": f"{e}ep0it", "name": name, "value": rng.random()})
             for e in range(epochs + 1) for name in ("test_loss", "test_accuracy", "train_loss", "lr")]
    (directory / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    accuracy = 0.9 * density ** 0.05 + rng.gauss(0, 0.005)
    if status == "done":
        write(directory / "done.json", {"final_step": f"{EPOCHS}ep0it", "final_iteration": EPOCHS * 391,
                                        "metrics": {"test_accuracy": accuracy, "test_loss": 0.3}})
    elif status == "corrupt":
        (directory / "done.json").write_text('{"final_step": "40ep0it", "metr')
    else:
        (directory / "checkpoint.pt").write_bytes(b"\0" * 64)
        if status == "failed":
            write(directory / "failed.json", {"reason": "diverged", "step": f"{epochs}ep0it"})


def build(root: Path, runs: int, rng: random.Random) -> int:
    """Trunks with two replicates, each with three oneshot branches and one 6-level IMP branch
    (10 result directories per replicate) until `runs` result directories exist."""
    made, k = 0, 0
    def status():
        return rng.choices(["done", "partial", "failed", "corrupt"], [0.93, 0.04, 0.02, 0.01])[0]
    while made < runs:
        trunk = trunk_hparams(k)
        for replicate in (1, 2):
            base = root / f"train_{k:020x}" / f"replicate_{replicate}"
            results(base / "main", rng, 1.0, status())
            write(base / "main" / "hparams.json", {"kind": "train", "hash": f"{k:020x}", "parent_hash": None,
                                                   "replicate": replicate, "seeds": {}, "hparams": trunk,
                                                   "schema_version": 1, "package_version": "0.1.0"})
            for j, fraction in enumerate((0.5, 0.9, 0.99)):
                branch = base / f"branch_oneshot_{k * 10 + j:020x}"
                results(branch, rng, 1 - fraction, status())
                own = defaults(oneshot.OneshotHparams) | {"strategy": "snip10", "prune_fraction": fraction}
                write(branch / "hparams.json", {"kind": "branch_oneshot", "hash": f"{k * 10 + j:020x}",
                                                "parent_hash": f"{k:020x}", "replicate": replicate, "seeds": {},
                                                "hparams": {**trunk, "oneshot": own}})
            branch = base / f"branch_iterative_{k * 10 + 9:020x}"
            for level in range(6):
                results(branch / f"level_{level}", rng, 0.8 ** level, status())
            levels = {n: v for n, v in defaults(imp.ImpHparams).items() if n != "levels"}
            write(branch / "hparams.json", {"kind": "branch_iterative", "hash": f"{k * 10 + 9:020x}",
                                            "parent_hash": f"{k:020x}", "replicate": replicate, "seeds": {},
                                            "hparams": {**trunk, "imp": levels}})
            made += 10
        k += 1
    return made


def main() -> None:
    runs = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--runs=")), "1000"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        made = build(root, runs, random.Random(0))
        started = time.perf_counter()
        with redirect_stdout(io.StringIO()) as captured:
            runs_command.main([f"--root={root}"])
        in_process = time.perf_counter() - started
        listed = len(captured.getvalue().splitlines()) - 2
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(REPO / "open_prune.py"), "runs", f"--root={root}"],
                                capture_output=True, text=True, cwd=REPO)
        command = time.perf_counter() - started
        assert result.returncode == 0, result.stderr
        assert listed == made == len(result.stdout.splitlines()) - 2, (listed, made)
    print(f"result directories: {made} (listed {listed})")
    print(f"listing in this process: {in_process:.2f} s")
    print(f"`open_prune.py runs` in a fresh process: {command:.2f} s (goal < {GOAL_SECONDS:.0f} s)")
    print(f"ratio={command / GOAL_SECONDS:.3f}")


if __name__ == "__main__":
    main()
