"""Cost of one SpaM marginal-likelihood update on LeNet-300-100 / Fashion-MNIST (CPU).

One update = diagonal GGN over the training set + 100 Adam steps (lr 0.1) on per-parameter log
prior precisions. Timed, in one process on the same model and data, against
  (a) one training epoch (SGD, cross-entropy + the prior's penalty), and
  (b) laplace-torch: DiagLaplace.fit (its default curvlinops GGN backend) + the same 100 steps
      on log_marginal_likelihood.
Two data sizes: the update-vs-epoch comparison runs on --examples training images (default: all
60000), the ours-vs-laplace-torch comparison on the first --laplace_examples (default 1024),
because laplace-torch's per-example Jacobians take minutes per thousand images on a small CPU.
Last line: ratio=<ours / laplace-torch> on the small subset.

    python benchmarks/marglik_overhead.py [--examples 60000] [--laplace_examples 1024]
"""

import argparse
import gzip
import warnings
from pathlib import Path

import numpy as np
import torch
from timing import timed_call
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


def train_epoch(model: nn.Module, loader, prior, n_data: int) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60000, help="images for update vs epoch")
    parser.add_argument("--laplace_examples", type=int, default=1024, help="images for ours vs laplace-torch")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 keeps timings stable on a shared machine (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)

    x, y = fashion_mnist_train(args.examples)
    # Batches by slicing in-memory tensors, as the project's in-memory datasets serve them.
    loader = [(x[i : i + args.batch_size], y[i : i + args.batch_size]) for i in range(0, len(x), args.batch_size)]
    small = TensorDataset(x[: args.laplace_examples], y[: args.laplace_examples])
    small_loader = DataLoader(small, batch_size=args.batch_size, shuffle=False)
    model = lenet_300_100()
    prior = make_prior("parameter", model, init_precision=1.0)
    train_epoch(model, loader, prior, len(x))  # warm-up, and weights that are not at init
    print(f"LeNet-300-100 on Fashion-MNIST, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"per-parameter prior, {args.steps} Adam steps (lr 0.1) per update")

    epoch_s, _ = timed_call(lambda: train_epoch(model, loader, prior, len(x)))
    update_prior_ = make_prior("parameter", model, init_precision=1.0)
    update_s, _ = timed_call(lambda: fit_and_update_prior(model, loader, update_prior_, steps=args.steps, lr=0.1))
    print(f"[{len(x)} images] one training epoch:              {epoch_s:8.3f} s")
    print(f"[{len(x)} images] ours, diag GGN fit + steps:      {update_s:8.3f} s")
    print(f"update / epoch: {update_s / epoch_s:.3f} (goal <= 1; overhead at one update per 5 epochs: "
          f"{100 * update_s / (5 * epoch_s):.1f}%)")

    ours_prior = make_prior("parameter", model, init_precision=1.0)
    ours_s, (_, ours_value) = timed_call(
        lambda: fit_and_update_prior(model, small_loader, ours_prior, steps=args.steps, lr=0.1)
    )
    ref_s, ref_value = timed_call(lambda: laplace_torch_update(model, small_loader, args.steps, 0.1))
    print(f"[{len(small)} images] ours, diag GGN fit + steps:       {ours_s:8.3f} s  "
          f"(log marglik {ours_value.item():.2f})")
    print(f"[{len(small)} images] laplace-torch, fit + steps:       {ref_s:8.3f} s  (log marglik {ref_value:.2f})")
    print(f"ratio={ours_s / ref_s:.4f}")


if __name__ == "__main__":
    main()
