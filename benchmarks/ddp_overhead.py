"""Data-parallel training against one process: LeNet-300-100 on Fashion-MNIST, global batch 128,
the same steps through `open_prune.py train`, once as one process and once under
`torchrun --nproc_per_node=N` (gloo on the CPU, N=2; nccl on CUDA, N = the GPUs here). Steps/s
come from each run's own done.json (training time, without process start-up). Last line:
ratio=<steps/s of N processes / steps/s of one>.

On the CPU the N processes share the cores that the single process uses with its threads (each
worker gets cores/N threads), so the ratio is what DDP costs or gains on the same hardware; the
single process is also timed with one thread, for scale. On several GPUs it is the speed-up.

    python benchmarks/ddp_overhead.py [--device=cuda] [--steps=400] [--nproc=N]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def option(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")), default)


def steps_per_second(launcher: list[str], steps: int, device: str, root: Path, threads: int) -> float:
    """Train for `steps` under `launcher` (each process with `threads` torch threads) and read
    the training time back from done.json."""
    flags = ["--default_hparams=fashionmnist_lenet_300_100", f"--training_steps={steps}it", f"--eval_every={steps}it",
             f"--device={device}", f"--root={root}", "--quiet"]
    result = subprocess.run([*launcher, str(REPO / "open_prune.py"), "train", *flags], cwd=REPO, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if result.returncode != 0:
        sys.exit(f"{' '.join(launcher)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    done = json.loads(next(root.glob("train_*/replicate_1/main/done.json")).read_text())
    return steps / done["seconds_this_session"]


def main() -> None:
    device = option("device", "cpu")
    steps = int(option("steps", "400"))
    nproc = int(option("nproc", str(torch.cuda.device_count() if device.startswith("cuda") else 2)))
    cores = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        one = steps_per_second([sys.executable], steps, device, Path(scratch) / "one", threads=cores)
        one_thread = steps_per_second([sys.executable], steps, device, Path(scratch) / "one_thread", threads=1)
        many = steps_per_second([TORCHRUN, "--standalone", f"--nproc_per_node={nproc}"], steps, device,
                                Path(scratch) / "many", threads=max(1, cores // nproc))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    print(f"device={device} steps={steps} global batch=128 cores={cores}")
    print(f"steps/s: 1 process x {cores} threads {one:.1f} (x 1 thread {one_thread:.1f}); "
          f"{nproc} processes ({backend}) x {max(1, cores // nproc)} thread(s) {many:.1f}")
    print(f"ratio={many / one:.3f}")


if __name__ == "__main__":
    main()
