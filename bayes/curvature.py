"""Curvature of the negative log likelihood at theta*, summed over a data set, batch by batch.

Structures
  diag_ggn  exact diagonal of the generalized Gauss-Newton  sum_n J_n^T H_n J_n  (per example,
            no sampling): H_n = S_n S_n^T is split into columns (bayes.likelihood) and each column
            is backpropagated once for the whole batch.
  diag_ef   diagonal of the empirical Fisher  sum_n g_n g_n^T,  g_n = d loss_n / d theta.
  kfac      for every Linear/Conv2d weight, G kron A with (sums over positions p for convs and
            weight-shared Linears, "KFAC-expand")
              G = sum_n sum_p sum_c  g_npc g_npc^T     (g: backpropagated column c of S_n)
              A = 1/(N P) sum_n sum_p  a_np a_np^T     (a: layer input / conv patch)
            so the block is sum-over-data for G times mean-over-data for A, as in laplace-torch's
            curvlinops backend. The layer's bias gets G (KFAC with a 1x1 input factor).
            Every other parameter (norm layers, grouped convs, ...) gets its exact diagonal GGN.

Language models: (batch, positions, vocabulary) logits with (batch, positions) targets are the
classification likelihood of every token, summed (bayes.likelihood); the example is the window,
so diag_ef is sum over windows of the squared gradient of the window's summed token loss (one
backward per batch; a per-token Fisher would need one per position). n_data counts windows.
The GGN structures are refused there (positions x classes columns per window).

Masked (pruned) weights are excluded: the forward pass uses weight * mask, their diagonal
curvature is zero, and bayes.laplace leaves them out of the determinants and the prior.

Memory is bounded by one batch: nothing per example outlives its batch. Examples must be
processed independently, so the model is put in eval mode for the fit and restored afterwards.
"""

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.func import functional_call

from bayes.layer_capture import capturing, closed_form_layers, output_positions
from bayes.likelihood import (
    check_likelihood,
    check_outputs,
    hessian_sqrt_columns,
    negative_log_likelihood,
    residual_columns,
)
from bayes.per_example import squared_column_gradients
from foundations.errors import UserError

STRUCTURES = ("diag_ggn", "diag_ef", "kfac")
_CHUNK_ELEMENTS = 1 << 24  # bound on per-example weight gradients held at once (weight sharing)
_MERGE_ELEMENTS = 1 << 22  # bound on input elements x columns of the batches merged for one pass


@dataclass
class KronBlock:
    """One layer's Kronecker factors: weight block G kron A over weight.flatten(1), bias block G."""

    weight: str
    bias: str | None
    weight_shape: torch.Size
    G: torch.Tensor
    A: torch.Tensor
    _eigen: tuple[torch.Tensor, ...] | None = field(default=None, repr=False)

    def eigen(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(eigenvalues of G, eigenvectors of G, eigenvalues of A, eigenvectors of A), cached;
        eigenvalues clamped at zero (the factors are PSD up to round-off)."""
        if self._eigen is None:
            lam_g, u_g = symmetric_eigh(self.G, f"{self.weight}'s output factor G")
            lam_a, u_a = symmetric_eigh(self.A, f"{self.weight}'s input factor A")
            self._eigen = (lam_g.clamp_min(0), u_g, lam_a.clamp_min(0), u_a)
        return self._eigen


def symmetric_eigh(factor: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """eigh of a PSD Kronecker factor, in float64 (raw, unstandardized inputs make A's spectrum
    span more than float32's LAPACK converges on), with one retry at a jitter of 1e-12 x its
    largest diagonal entry; the results in the factor's dtype. A UserError if it still fails."""
    m = factor.double()
    m = (m + m.T) / 2
    try:
        lam, u = torch.linalg.eigh(m)
    except torch.linalg.LinAlgError:
        jitter = 1e-12 * m.diagonal().abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        try:
            lam, u = torch.linalg.eigh(m + jitter * torch.eye(m.shape[0], dtype=m.dtype, device=m.device))
        except torch.linalg.LinAlgError:
            raise UserError(f"the eigendecomposition of {what} failed (ill-conditioned): standardize the inputs "
                            "(--input_normalization=dataset) or use a diagonal --curvature") from None
    return lam.to(factor.dtype), u.to(factor.dtype)


@dataclass
class Curvature:
    """A fitted curvature at theta*; everything bayes.laplace and bayes.opd need."""

    structure: str
    likelihood: str
    theta: dict[str, torch.Tensor]  # theta* with masked weights zeroed, detached
    mask: dict[str, torch.Tensor]  # bool masks over (some) weights; absent = all kept
    diagonal: dict[str, torch.Tensor]  # diagonal curvature of every parameter not in kron
    kron: list[KronBlock]
    loss: torch.Tensor  # summed unit-noise negative log likelihood at theta*
    n_data: int
    n_outputs: int
    prunable: tuple[str, ...]  # the weights OPD scores by default
    _flat: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict, repr=False)

    def kept(self, name: str) -> torch.Tensor | None:
        """The bool mask of a parameter, or None where every entry is kept."""
        return self.mask.get(name)

    def kept_weights(self, name: str) -> torch.Tensor | None:
        """The mask as a flat 0/1 float vector (cached), or None where every entry is kept."""
        if name not in self.mask:
            return None
        key = ("kept", name)
        if key not in self._flat:
            self._flat[key] = self.mask[name].reshape(-1).to(self.theta[name].dtype)
        return self._flat[key]

    def theta_squared(self, name: str) -> torch.Tensor:
        """theta*^2 as a flat vector (cached): the prior's scatter term reads it every step."""
        key = ("theta_sq", name)
        if key not in self._flat:
            self._flat[key] = self.theta[name].reshape(-1).square()
        return self._flat[key]


def _check_mask(mask: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> None:
    for name, m in mask.items():
        if name not in params:
            raise UserError(f"mask names {name!r}, which is not a trainable parameter of the model")
        if m.shape != params[name].shape:
            raise UserError(
                f"mask for {name!r} has shape {tuple(m.shape)}, the weight {tuple(params[name].shape)}"
            )


def _prunable_names(model: nn.Module, params: dict[str, torch.Tensor], restricted: bool = False
                    ) -> tuple[str, ...]:
    names = getattr(model, "prunable_layer_names", None)
    if names is None:
        return tuple(n for n, p in params.items() if p.ndim >= 2)
    if restricted:  # a posterior over some parameters: the prunable ones among them
        return tuple(n for n in names if n in params)
    missing = [n for n in names if n not in params]
    if missing:
        raise UserError(f"prunable_layer_names lists {missing}, which are not trainable parameters")
    return tuple(names)


def _per_example_weight_squares(g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """sum_{c,n} (sum_p g[c,n,p,:] a[n,p,:]^T)^2 for g (C,N,P,O), a (N,P,I); chunked over n."""
    columns, batch, _, out = g.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, columns * out * a.shape[-1]))
    total = g.new_zeros(out, a.shape[-1])
    for start in range(0, batch, chunk):
        per_example = torch.einsum(
            "cnpo,npi->cnoi", g[:, start : start + chunk], a[start : start + chunk]
        )
        total += per_example.square().sum((0, 1))
    return total


def _accumulate_diagonal(acc, layer, g, a):
    positions = a.shape[1]
    if positions == 1:
        g0 = g[:, :, 0]
        g2 = (g0 * g0).sum(0)  # (N, O)
        a0 = a[:, 0]
        acc[layer.weight] += g2.T @ (a0 * a0)
        if layer.bias is not None:
            acc[layer.bias] += g2.sum(0)
    else:
        acc[layer.weight] += _per_example_weight_squares(g, a).reshape(acc[layer.weight].shape)
        if layer.bias is not None:
            acc[layer.bias] += g.sum(2).square().sum((0, 1))


def _accumulate_kron(factors, layer, g, a):
    G, A = factors[layer.weight]
    g_flat = g.reshape(-1, g.shape[-1])
    a_flat = a.reshape(-1, a.shape[-1])
    G += g_flat.T @ g_flat
    A += (a_flat.T @ a_flat) / a.shape[1]


def n_outputs_hint(model: nn.Module) -> int | None:
    """The model's number of outputs if its last Linear layer tells it (else None)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return None if last is None else last.out_features


def columns_per_example(structure: str, likelihood: str, n_outputs: int | None) -> int:
    """How many vectors each example backpropagates: one for the empirical Fisher, one per
    output for the GGN (the columns of the Hessian's square root)."""
    return 1 if structure == "diag_ef" else (n_outputs or 1)


def merged_batches(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], columns: int,
                   budget: int = _MERGE_ELEMENTS) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches, consecutive ones concatenated while the merged batch stays within `budget`
    elements of input times backpropagated columns (a proxy for the batched backward's memory,
    which grows with both). The curvature is a sum over examples, so only its rounding depends
    on the grouping; small models' fits run several times faster on batches of a thousand
    examples than of a hundred (the training batch). A batch over the budget is never split.
    Token ids (integer inputs) are never merged: their activations are a width per token, far
    more than the proxy counts."""
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []
    size = 0
    for x, y in batches:
        if not (x.is_floating_point() or x.is_complex()):
            yield x, y
            continue
        per_example = max(1, x[0].numel()) * columns
        if pending and (size + x.shape[0]) * per_example > budget:
            yield _concatenated(pending)
            pending, size = [], 0
        pending.append((x, y))
        size += x.shape[0]
    if pending:
        yield _concatenated(pending)


def _concatenated(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(batches) == 1:
        return batches[0]
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def fit_curvature(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    likelihood: str = "classification",
    structure: str = "diag_ggn",
    mask: dict[str, torch.Tensor] | None = None,
    posterior: Iterable[str] | None = None,
) -> Curvature:
    """Sum the chosen curvature of the negative log likelihood over batches of (x, y).

    Every parameter with requires_grad is in the posterior (as in laplace-torch), or those that
    `posterior` names (a subset: the others stay fixed at their values, outside the Laplace, e.g.
    a language model's embeddings and norms); mask names a subset of them (bool, True = kept).
    Targets: class indices for classification (per position for (batch, positions, classes)
    outputs), a tensor shaped like the output for regression.
    """
    check_likelihood(likelihood)
    if structure not in STRUCTURES:
        raise UserError(f"unknown curvature structure {structure!r}: use one of {', '.join(STRUCTURES)}")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen: dict[str, torch.Tensor] = {}
    if posterior is not None:
        chosen = set(posterior)
        unknown = sorted(chosen - set(params))
        if unknown:
            raise UserError(f"the posterior names {unknown}, which are not trainable parameters of the model")
        frozen = {n: p.detach() for n, p in params.items() if n not in chosen}
        params = {n: p for n, p in params.items() if n in chosen}
    if not params:
        raise UserError("the model has no trainable parameters to put a posterior on")
    mask = mask or {}
    _check_mask(mask, params)
    mask = {n: m.to(dtype=torch.bool, device=params[n].device) for n, m in mask.items()}
    theta = {n: (p.detach() * mask[n] if n in mask else p.detach()) for n, p in params.items()}

    layers = closed_form_layers(model, set(params))
    covered = {layer.weight for layer in layers} | {layer.bias for layer in layers if layer.bias}
    free_names = [n for n in params if n not in covered]
    diagonal_names = list(params) if structure != "kfac" else free_names
    diagonal = {n: torch.zeros_like(theta[n]) for n in diagonal_names}
    factors = {}
    if structure == "kfac":
        for layer in layers:
            w = theta[layer.weight]
            in_features = w[0].numel()
            factors[layer.weight] = (w.new_zeros(w.shape[0], w.shape[0]), w.new_zeros(in_features, in_features))

    device = next(iter(theta.values())).device
    loss = torch.zeros((), dtype=next(iter(theta.values())).dtype, device=device)
    n_data, n_outputs = 0, 0
    modules = dict(model.named_modules())
    was_training = model.training
    model.eval()
    try:
        for x, y in merged_batches(batches, columns_per_example(structure, likelihood, n_outputs_hint(model))):
            x, y = x.to(device), y.to(device)
            with capturing(model, layers) as capture:
                f = functional_call(model, {**frozen, **theta}, (x,))
            check_outputs(f, y, likelihood)
            loss += negative_log_likelihood(f.detach(), y, likelihood)
            n_data += f.shape[0]
            n_outputs = f.shape[-1]
            if structure == "diag_ef":
                columns = residual_columns(f, y, likelihood)
            else:
                columns = hessian_sqrt_columns(f, likelihood)

            if layers:
                nodes = [capture.outputs[layer.module_name] for layer in layers]
                if columns.shape[0] == 1:  # one column (the empirical Fisher): no batching needed
                    grads = torch.autograd.grad(f, nodes, grad_outputs=columns[0], allow_unused=True)
                    grads = [None if grad is None else grad.unsqueeze(0) for grad in grads]
                else:
                    grads = torch.autograd.grad(
                        f, nodes, grad_outputs=columns, is_grads_batched=True, allow_unused=True
                    )
                for layer, grad, node in zip(layers, grads, nodes):
                    if grad is None:  # the layer does not reach the output
                        grad = node.new_zeros((columns.shape[0],) + node.shape)
                    g = output_positions(grad, modules[layer.module_name])
                    a = capture.inputs[layer.module_name]
                    if structure == "kfac":
                        _accumulate_kron(factors, layer, g, a)
                    else:
                        _accumulate_diagonal(diagonal, layer, g, a)
            del capture, f

            if free_names:
                fixed = {**frozen, **{n: t for n, t in theta.items() if n not in free_names}}
                free = {n: theta[n] for n in free_names}
                for name, s in squared_column_gradients(model, fixed, free, x, columns).items():
                    diagonal[name] += s
    finally:
        model.train(was_training)

    if n_data == 0:
        raise UserError("no data: the batches were empty, so there is no curvature to fit")
    for name, m in mask.items():
        if name in diagonal:
            diagonal[name] *= m
    kron = []
    if structure == "kfac":
        for layer in layers:
            G, A = factors[layer.weight]
            kron.append(KronBlock(layer.weight, layer.bias, theta[layer.weight].shape, G, A / n_data))
    return Curvature(
        structure=structure,
        likelihood=likelihood,
        theta=theta,
        mask=mask,
        diagonal=diagonal,
        kron=kron,
        loss=loss,
        n_data=n_data,
        n_outputs=n_outputs,
        prunable=_prunable_names(model, params, restricted=posterior is not None),
    )
