"""Cost of one SpaM marginal-likelihood update on LeNet-300-100 / Fashion-MNIST (CPU).

One update = diagonal GGN over the training set + 100 Adam steps (lr 0.1) on per-parameter log
prior precisions. Timed, in one process on the same model and data, against
  (a) one training epoch (SGD, cross-entropy + the prior's penalty), and
  (b) laplace-torch: DiagLaplace.fit (its default curvlinops GGN backend) + the same 100 steps
      on log_marginal_likelihood.
By default a subset of the training set is used for all three (laplace-torch's per-example
Jacobians are slow on CPU); the epoch is over the same subset. Last line: ratio=<ours / laplace-torch>.

    python benchmarks/marglik_overhead.py [--examples 4096] [--batch_size 128]
"""

import argparse
import gzip
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bayes import fit_and_update_prior, make_prior

DATA = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file (the MNIST family's format) as a numpy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist_train(examples: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(DATA / "train-images-idx3-ubyte.gz")[:examples]
    labels = read_idx(DATA / "train-labels-idx1-ubyte.gz")[:examples]
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    x = (x - 0.2860) / 0.3530
    return x, torch.from_numpy(labels.astype(np.int64))


def lenet_300_100() -> nn.Sequential:
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


def train_epoch(model: nn.Module, loader: DataLoader, prior, n_data: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y) + prior.penalty(model, n_data)
        loss.backward()
        optimizer.step()


def laplace_torch_update(model: nn.Module, loader: DataLoader, steps: int, lr: float) -> float:
    from laplace import DiagLaplace

    la = DiagLaplace(model, "classification")
    la.fit(loader)
    log_prec = torch.zeros(la.n_params, requires_grad=True)
    optimizer = torch.optim.Adam([log_prec], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        (-la.log_marginal_likelihood(log_prec.exp())).backward()
        optimizer.step()
    with torch.no_grad():
        return la.log_marginal_likelihood(log_prec.exp()).item()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4096, help="training examples used (of 60000)")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)

    x, y = fashion_mnist_train(args.examples)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=False)
    model = lenet_300_100()
    prior = make_prior("parameter", model, init_precision=1.0)
    train_epoch(model, loader, prior, len(x))  # warm-up, and weights that are not at init
    print(f"LeNet-300-100, Fashion-MNIST train subset of {len(x)} examples, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, {args.steps} hyperparameter steps")

    epoch_s, _ = timed(lambda: train_epoch(model, loader, prior, len(x)))
    print(f"one training epoch on the subset:      {epoch_s:8.3f} s")

    ours_prior = make_prior("parameter", model, init_precision=1.0)
    ours_s, (_, ours_value) = timed(
        lambda: fit_and_update_prior(model, loader, ours_prior, steps=args.steps, lr=0.1)
    )
    print(f"ours: diag GGN fit + {args.steps} steps:        {ours_s:8.3f} s  (log marglik {ours_value.item():.2f})")

    ref_s, ref_value = timed(lambda: laplace_torch_update(model, loader, args.steps, 0.1))
    print(f"laplace-torch: fit + {args.steps} steps:       {ref_s:8.3f} s  (log marglik {ref_value:.2f})")

    print(f"update / epoch: {ours_s / epoch_s:.3f} (goal <= 1; overhead at one update per 5 epochs: "
          f"{100 * ours_s / (5 * epoch_s):.1f}%)")
    print(f"ratio={ours_s / ref_s:.4f}")


if __name__ == "__main__":
    main()
