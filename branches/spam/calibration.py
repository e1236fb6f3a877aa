"""How good and how calibrated a classifier's probabilities are: accuracy, NLL, Brier score, ECE.

For softmax probabilities p_n over K classes and labels y_n, over N test examples:
  accuracy  mean of [argmax p_n = y_n]
  nll       mean of -log p_n[y_n]                        (the cross-entropy of the logits)
  brier     mean of sum_k (p_n[k] - [k = y_n])^2         (summed over classes, as SpaM reports it)
  ece       sum_b |sum_{n in b} ([argmax p_n = y_n] - max_k p_n[k])| / N, with top-label
            confidences max_k p_n[k] put in B equal-width bins [b/B, (b+1)/B) (a confidence of
            exactly 1 goes to the last bin).

Everything is accumulated batch by batch on the device in float64 and read once at the end. A
regression task has none of these: it reports the mean squared error over examples and outputs.
A language model's (batch, positions, vocabulary) logits count every token as an example (next-token
accuracy, token NLL = the test loss) and add perplexity = exp(nll).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from foundations.errors import UserError

DEFAULT_BINS = 10  # the authors' torchmetrics calibration_error(n_bins=10)


class CalibrationSums:
    """Running sums over batches of logits and labels; `metrics()` reads them once."""

    def __init__(self, bins: int = DEFAULT_BINS, device: torch.device | str = "cpu"):
        if bins < 1:
            raise UserError(f"--ece_bins={bins} must be at least 1")
        self.bins = bins
        self.count = 0
        self.totals = torch.zeros(3, dtype=torch.float64, device=device)  # correct, nll, brier
        self.bin_gap = torch.zeros(bins, dtype=torch.float64, device=device)  # sum of correct - confidence

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.detach().to(torch.float64).reshape(-1, logits.shape[-1])
        labels = labels.reshape(-1)
        log_p = F.log_softmax(logits, dim=1)
        p = log_p.exp()
        confidence, predicted = p.max(dim=1)
        correct = (predicted == labels).to(torch.float64)
        one_hot = F.one_hot(labels, logits.shape[1]).to(torch.float64)
        self.totals[0] += correct.sum()
        self.totals[1] += F.nll_loss(log_p, labels, reduction="sum")
        self.totals[2] += (p - one_hot).square().sum()
        index = (confidence * self.bins).floor().long().clamp_(0, self.bins - 1)
        self.bin_gap.index_add_(0, index, correct - confidence)
        self.count += labels.shape[0]

    def metrics(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no examples were added")
        accuracy, nll, brier = (self.totals / self.count).tolist()
        ece = (self.bin_gap.abs().sum() / self.count).item()
        return {"accuracy": accuracy, "nll": nll, "brier": brier, "ece": ece}


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor, bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Accuracy, NLL, Brier score and ECE of one batch of logits (see the module docstring)."""
    sums = CalibrationSums(bins, logits.device)
    sums.add(logits, labels)
    return sums.metrics()


@torch.no_grad()
def evaluate_calibration(model: torch.nn.Module, loader, bins: int = DEFAULT_BINS) -> dict[str, float]:
    """The metrics of `model` over a whole split, in eval mode (restored afterwards), one host sync.

    Classification: accuracy, nll, brier, ece (language modelling: per token, and perplexity).
    Regression: mse (mean over examples and outputs).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        if getattr(loader, "task", "classification") == "regression":
            total = torch.zeros((), dtype=torch.float64, device=device)
            count = 0
            for x, y in loader.batches(0):
                outputs = model(x).to(torch.float64)
                total += (outputs - y.to(outputs.dtype).reshape(outputs.shape)).square().sum()
                count += outputs.numel()
            return {"mse": (total / count).item()}
        sums = CalibrationSums(bins, device)
        for x, y in loader.batches(0):
            sums.add(model(x), y)
        metrics = sums.metrics()
        if getattr(loader, "task", None) == "language_modeling":
            metrics["perplexity"] = math.exp(min(metrics["nll"], 700.0))
        return metrics
    finally:
        model.train(was_training)
