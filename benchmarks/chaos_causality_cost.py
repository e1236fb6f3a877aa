"""What the chaos-causality analysis costs: LeNet-300-100 on Fashion-MNIST for 5 epochs, every
weight recorded (266,200), windows of 50 updates overlapping by 0.1 (52 windows), the paper's
exponent (TISEAN's neighbour rule, curve[1] - curve[0], 6 decimals) and Granger test (ssr_chi2test,
lags 1..14), the risk on a 10% validation split, all as the branch runs them.

  1. the 5 epochs trained plainly (the reference);
  2. the same 5 epochs with the trajectory recorder (ring buffer, exponents at each window end,
     risk), then the Granger test of every weight: the analysis is (2 minus 1) plus the test;
     peak extra memory is the growth of the peak (RSS on the CPU, allocated memory on CUDA);
  3. the paper's way, timed on a sample of weights and extrapolated to the same work: nolds.lyap_r
     on every window of a weight (nolds' neighbour rule, the closest open-source stand-in for
     TISEAN) and one statsmodels grangercausalitytests call per weight.
Last line: ratio=<loop estimate / ours>.

    python benchmarks/chaos_causality_cost.py [--device=cpu] [--epochs=5] [--sample=20]
        [--layers=fc_layers.1.weight,fc.weight] [--dataset_root=DIR] [--threads=N] [--clock=cpu]

--clock=cpu times our side in this process's CPU seconds (all threads) instead of wall-clock
seconds: with --threads=1 on a machine shared with other work it is the steadier measure.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets.registry as datasets_registry  # noqa: E402
import models.registry as models_registry  # noqa: E402
from benchmarks.timing import timed  # noqa: E402
from branches.chaos.causal_pruning import granger_causality, usable_maxlag  # noqa: E402
from branches.chaos.chaos_causality import ChaosHparams  # noqa: E402
from branches.chaos.recorder import TrajectoryRecorder  # noqa: E402
from foundations.bundles import TrainingHparams  # noqa: E402
from platforms.platform import Platform  # noqa: E402
from training.hooks import Hook  # noqa: E402
from training.loop import train  # noqa: E402
from training.losses import Loss  # noqa: E402

MODEL = "fashionmnist_lenet_300_100"


class SampleSpy(Hook):
    """The whole trajectory of a few weights (for the loop), nothing else."""

    def __init__(self, layers: list[str], columns: torch.Tensor):
        self.layers, self.columns, self.rows = layers, columns, []

    def after_optimizer_step(self, state):
        weights = dict(state.model.named_parameters())
        flat = torch.cat([weights[name].detach().reshape(-1) for name in self.layers])
        self.rows.append(flat[self.columns].double().cpu())


def cpu_timed(fn, device: torch.device) -> float:
    """CPU seconds of this process (all its threads) for one call of fn (--clock=cpu)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def peak_memory(device: torch.device) -> float:
    """Peak bytes so far: allocated on CUDA, resident set on the CPU."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sample", type=int, default=20, help="weights timed with nolds + statsmodels")
    parser.add_argument("--layers", default=None, help="analyse only these weights (default: every one)")
    parser.add_argument("--dataset_root", default=str(Path.home() / "open_prune_datasets"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    measure = cpu_timed if args.clock == "cpu" else timed
    h = ChaosHparams()

    data = SimpleNamespace(dataset_name="fashionmnist", batch_size=128, do_not_augment=True, transformation_seed=0,
                           subsample_fraction=None, random_labels_fraction=None, validation_fraction=h.val_fraction)
    loaders = {split: datasets_registry.get(data, split, root=Path(args.dataset_root), device=device)
               for split in ("train", "val", "test")}
    model_h = SimpleNamespace(model_name=MODEL, model_init="kaiming_normal", batchnorm_init="uniform",
                              batchnorm_frozen=False, output_frozen=False)
    def new_model():
        return models_registry.get(model_h, (1, 28, 28), 10, seed=0).to(device)
    training = TrainingHparams("sgd", 0.1, f"{args.epochs}ep")
    platform = Platform(root=Path("/tmp"), dataset_root=Path("/tmp"), device=device, quiet=True)
    layers = args.layers.split(",") if args.layers else list(new_model().prunable_layer_names)
    steps = args.epochs * len(loaders["train"])

    def run(hooks):
        with tempfile.TemporaryDirectory() as out:
            train(new_model(), training, loaders["train"], loaders["test"], Path(out), platform=platform,
                  data_order_seed=0, hooks=hooks)

    run([])  # warm-up: kernels, allocator, page cache
    plain_seconds = measure(lambda: run([]), device)
    baseline_peak = peak_memory(device)

    recorder = TrajectoryRecorder(layers, steps=steps, window=h.window, overlap=h.overlap, record=h.record,
                                  risk_loader=loaders["val"], loss=Loss(None, "classification", 10),
                                  lyapunov_options=h.lyapunov_options())
    weights = sum(dict(new_model().named_parameters())[name].numel() for name in layers)
    sample = torch.randperm(weights, generator=torch.Generator().manual_seed(0))[: args.sample]
    spy = SampleSpy(layers, sample.to(device))
    recorded_seconds = measure(lambda: run([recorder, spy]), device)  # the spy costs a gather per step
    recording = recorder.result()
    n_windows = recording.risk.shape[0]
    granger_seconds = measure(lambda: granger_causality(
        recording, maxlag=h.maxlag, test=h.granger_test, alpha=h.alpha, fdr=h.fdr, on_infeasible=h.on_infeasible,
        device=device), device)
    extra_peak = peak_memory(device) - baseline_peak
    ours = recorded_seconds - plain_seconds + granger_seconds

    import nolds
    from statsmodels.tsa.stattools import grangercausalitytests

    trajectory = torch.stack(spy.rows).numpy()  # (steps, sample)
    stride = h.window - round(h.overlap * h.window)
    starts = range(0, steps - h.window + 1, stride)
    risk = recording.risk.numpy()
    lags = usable_maxlag(h.maxlag, n_windows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        for column in range(trajectory.shape[1]):
            for first in starts:
                window = np.round(trajectory[first:first + h.window, column], h.decimals)
                if np.ptp(window) >= 1e-5:  # the paper skipped static windows (exponent 0)
                    nolds.lyap_r(window, emb_dim=2, lag=1, min_tsep=0, trajectory_len=4, fit="poly")
        nolds_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for column in range(trajectory.shape[1]):
            series = recording.exponents[:, sample[column]].numpy()
            try:
                grangercausalitytests(np.column_stack([risk, series]), lags)
            except Exception:  # InfeasibleTestError: the paper's loop skipped (kept) these
                pass
        statsmodels_seconds = time.perf_counter() - start
    per_weight = (nolds_seconds + statsmodels_seconds) / trajectory.shape[1]
    loop_estimate = per_weight * weights

    print(f"device={device} threads={torch.get_num_threads()} clock={args.clock} {MODEL}: {weights} weights analysed, "
          f"{steps} steps, {n_windows} windows of {h.window} (stride {stride}), Granger lags 1..{lags}")
    print(f"training, {args.epochs} epochs: {plain_seconds:.1f} s")
    print(f"ours: {ours:.1f} s of analysis = {recorded_seconds - plain_seconds:.1f} s recording + exponents + risk "
          f"during training + {granger_seconds:.1f} s Granger; peak extra memory {extra_peak / 2**20:.0f} MiB")
    print(f"paper's loop on {trajectory.shape[1]} weights: nolds {nolds_seconds / trajectory.shape[1]:.3f} s/weight "
          f"({len(starts)} windows), statsmodels {statsmodels_seconds / trajectory.shape[1]:.3f} s/weight -> "
          f"{loop_estimate:.0f} s ({loop_estimate / 3600:.1f} h) for {weights} weights")
    print(f"ratio={loop_estimate / ours:.1f}")


if __name__ == "__main__":
    main()
