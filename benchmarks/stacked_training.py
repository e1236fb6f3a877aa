"""Stacked training against one run after another: the same grid, through `submit --local`, with
and without `--stack`, in the same process (fresh roots each time, the datasets read once before).
Prints runs/s of each and the ratio, for

  - 16 replicates of the tiny iris recipe (iris_sigmoid_6: a 4-6-3 sigmoid MLP, per-example SGD,
    the chaos-causality retraining's network and recipe), shortened to --iris_steps (goal >= 5x);
  - the 16 chaos-causality retrainings of 4 iris replicates (dense, LEGCNet, random, magnitude,
    each to the authors' 0.95 training-accuracy benchmark), timed alone: the grid is run once
    without --stack, then its retraining directories are removed and redone, with and without
    --stack, from copies of that root (goal >= 5x);
  - 16 orderedness runs on the complete layer (xor_complete_5, topk and dyn_topk, 8 replicates; the
    grid's 8 trunks are trained too, stacked or not) (goal >= 5x);
  - 8 replicates of Fashion-MNIST LeNet-300-100 (batch 128, SGD), --lenet_steps each (goal >= 1.5x);
  - 16 CIFAR-10 ResNet-20 replicates on a GPU, --resnet_steps each (goal >= 8x), when one is present.

    python benchmarks/stacked_training.py [--num_threads=1] [--iris_steps=10ep] [--lenet_steps=100it]
                                          [--resnet_steps=100it] [--only=iris,chaos,orderedness,lenet,resnet]
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import open_prune  # noqa: E402


def option(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default)


def submit(grid: list[str], stacked: bool, device: str, threads: str) -> float:
    """Seconds to run the grid in a fresh root (its output swallowed)."""
    with tempfile.TemporaryDirectory() as root:
        argv = ["submit", "--local", *(["--stack"] if stacked else []), "--", *grid, f"--root={root}",
                f"--device={device}", f"--num_threads={threads}", "--quiet"]
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = open_prune.main(argv)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    if code:
        raise SystemExit(f"submit failed ({code}): {' '.join(argv)}")
    return seconds


def compare(label: str, grid: list[str], runs: int, device: str, threads: str, goal: float) -> None:
    submit([*grid[:-1], "--replicate=1"], False, device, threads)  # warm-up: reads the data, imports
    alone = submit(grid, False, device, threads)
    stacked = submit(grid, True, device, threads)
    ratio = alone / stacked
    print(f"{label}: {runs} runs on {device}: one after another {runs / alone:.2f} runs/s ({alone:.1f} s), "
          f"stacked {runs / stacked:.2f} runs/s ({stacked:.1f} s); ratio={ratio:.2f} (goal >= {goal})", flush=True)


RETRAININGS = ("dense", "legcnet", "random", "magnitude")


def compare_retrainings(label: str, grid: list[str], runs: int, threads: str, goal: float) -> None:
    """The retrainings of a chaos-causality grid alone: everything before them is done once, then
    each side redoes only them, from its own copy of that root."""
    common = ["--device=cpu", f"--num_threads={threads}", "--quiet"]
    with tempfile.TemporaryDirectory() as scratch:
        done = Path(scratch) / "done"
        with contextlib.redirect_stdout(io.StringIO()):
            code = open_prune.main(["submit", "--local", "--", *grid, f"--root={done}", *common])
        if code:
            raise SystemExit(f"the chaos-causality grid failed ({code})")
        seconds = {}
        for stacked in (False, True):
            root = Path(scratch) / ("stacked" if stacked else "alone")
            shutil.copytree(done, root)
            for branch in root.glob("train_*/replicate_*/branch_chaos-causality_*"):
                for name in RETRAININGS:
                    shutil.rmtree(branch / name)
                for name in ("branch_done.json", "table.csv", "table.json"):
                    (branch / name).unlink()
            argv = ["submit", "--local", *(["--stack"] if stacked else []), "--", *grid, f"--root={root}", *common]
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = open_prune.main(argv)
            seconds[stacked] = time.perf_counter() - start
            if code:
                raise SystemExit(f"submit failed ({code}): {' '.join(argv)}")
    alone, stacked = seconds[False], seconds[True]
    print(f"{label}: {runs} runs on cpu: one after another {runs / alone:.2f} runs/s ({alone:.1f} s), "
          f"stacked {runs / stacked:.2f} runs/s ({stacked:.1f} s); ratio={alone / stacked:.2f} (goal >= {goal})",
          flush=True)


def main() -> None:
    threads = option("num_threads", "1")
    only = option("only", "iris,chaos,orderedness,lenet,resnet").split(",")
    print(f"torch {torch.__version__}, {threads} CPU thread(s)")
    if "iris" in only:
        compare("iris_sigmoid_6 replicates",
                ["train", "--default_hparams=iris_sigmoid_6", f"--training_steps={option('iris_steps', '10ep')}",
                 "--replicate=1-16"], 16, "cpu", threads, 5.0)
    if "chaos" in only:
        compare_retrainings("iris chaos-causality retrainings (4 replicates x dense, LEGCNet, random, magnitude)",
                            ["branch", "chaos-causality", "--default_hparams=iris_sigmoid_6", "--replicate=1-4"], 16,
                            threads, 5.0)
    if "orderedness" in only:
        compare("xor_complete_5 orderedness runs (topk and dyn_topk at keep 0.5, 8 replicates, their trunks too)",
                ["branch", "orderedness", "--default_hparams=xor_complete_5", "--rule=topk,dyn_topk", "--keep=0.5",
                 "--replicate=1-8"], 16, "cpu", threads, 5.0)
    if "lenet" in only:
        compare("Fashion-MNIST LeNet-300-100 replicates",
                ["train", "--default_hparams=fashionmnist_lenet_300_100",
                 f"--training_steps={option('lenet_steps', '100it')}", "--replicate=1-8"], 8, "cpu", threads, 1.5)
    if "resnet" in only:
        if not torch.cuda.is_available():
            print("CIFAR-10 ResNet-20 replicates: needs a GPU (none here); rerun this on one with --only=resnet")
        else:
            compare("CIFAR-10 ResNet-20 replicates",
                    ["train", "--default_hparams=cifar_resnet_20",
                     f"--training_steps={option('resnet_steps', '100it')}", "--replicate=1-16"], 16, "cuda",
                    threads, 8.0)


if __name__ == "__main__":
    main()
