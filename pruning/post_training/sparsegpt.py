"""SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately
Pruned in One-Shot"): prune a layer and reconstruct its output by approximate second-order
(OBS) updates of the weights it keeps.

For a layer with weights W (rows x columns, a convolution's flattened) and calibration inputs X
(the rows of calibration.layer_rows), H = XᵀX, dampened by `damp` times the mean of its diagonal
(the paper's percdamp, default 0.01); an input that is never nonzero has its column zeroed and its
diagonal set to 1, as in the paper's code. With U the upper Cholesky factor of H⁻¹, columns are
processed left to right: when column i is reached its pruned entries are zeroed and the error
(w_i - q_i) / U_ii is spread over the columns to its right along U's row i. That is, for the mask
chosen, the result of re-solving the damped least squares of the layer's output for the columns
to the right with every column up to i held fixed (tests/test_sparsegpt.py checks it against
that solve). Updates are applied lazily, `blocksize` columns at a time (default 128, the paper's),
which is exact. The mask is chosen as the paper's code does: unstructured, inside each block of
columns by the smallest w² / U_ii² over the block's rows x columns (the layer's removals spread
over the blocks by their share of the columns, so the layer loses exactly its count); N:M, for
every group of M columns when the loop reaches it, per row the N largest w² / U_ii² kept.
Biases are not changed (the paper's code does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import torch
from torch import nn

from foundations.errors import UserError
from pruning.mask import Mask
from pruning.post_training.calibration import CalibrationData, prune_step_by_step

DEFAULT_DAMP = 0.01
DEFAULT_BLOCKSIZE = 128


def dampened(gram: torch.Tensor, weight: torch.Tensor, damp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(H with dead inputs fixed and `damp` x mean(diag) added, W with dead inputs' columns zeroed)."""
    H, W = gram.clone(), weight.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.diag(H).mean() * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    return H, W


def inverse_cholesky(H: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU)."""
    try:
        lower = torch.linalg.cholesky(H)
    except torch.linalg.LinAlgError:
        raise UserError("SparseGPT's Hessian is not positive definite even with dampening: raise "
                        "--sparsegpt_damp (e.g. 0.1) or --calibration_examples") from None
    return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)


def sparsegpt_layer(weight: torch.Tensor, gram: torch.Tensor, alive: torch.Tensor, removal: int, *,
                    nm: Optional[tuple[int, int]] = None, blocksize: int = DEFAULT_BLOCKSIZE,
                    damp: float = DEFAULT_DAMP) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructed weight, alive) of one layer, shaped like `weight`, computed in gram's dtype:
    `removal` more of the alive entries off (unstructured), or N of every M kept (`nm`)."""
    if blocksize < 1:
        raise UserError(f"--sparsegpt_blocksize={blocksize} must be at least 1")
    if nm is not None and blocksize % nm[1]:
        raise UserError(f"--sparsegpt_blocksize={blocksize} must be a multiple of M={nm[1]} so that no group of "
                        f"M columns straddles two blocks")
    shape = weight.shape
    H, W = dampened(gram, weight.detach().flatten(1).to(gram.dtype), damp)
    pruned = ~alive.flatten(1).to(W.device)
    U = inverse_cholesky(H)
    rows, columns = W.shape
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1, U1 = W[:, i1:i2].clone(), U[i1:i2, i1:i2]
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        diagonal = torch.diag(U1)
        if nm is None:
            share = round(removal * i2 / columns) - round(removal * i1 / columns)
            _prune_lowest(W1.square() / diagonal.square()[None, :], pruned[:, i1:i2], share)
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                _prune_nm(W1[:, i:i + nm[1]].square() / diagonal[i:i + nm[1]].square()[None, :],
                          pruned[:, i1 + i:i1 + i + nm[1]], nm[0])
            w = W1[:, i]
            q = torch.where(pruned[:, i1 + i], torch.zeros_like(w), w)
            Q1[:, i] = q
            error = (w - q) / U1[i, i]
            W1[:, i:] -= error[:, None] * U1[i, i:][None, :]
            Err1[:, i] = error
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W.view(shape), (~pruned).view(shape)


def _prune_lowest(scores: torch.Tensor, pruned: torch.Tensor, count: int) -> None:
    """Switch on `count` more entries of `pruned` (in place): the unpruned with the lowest scores."""
    if count <= 0:
        return
    flat_scores, flat_pruned = scores.flatten(), pruned.flatten()
    candidates = (~flat_pruned).nonzero().squeeze(1)
    if count > candidates.numel():
        raise ValueError(f"cannot remove {count} entries: only {candidates.numel()} are alive")
    chosen = candidates[torch.sort(flat_scores[candidates], stable=True).indices[:count]]
    flat_pruned[chosen] = True
    pruned.copy_(flat_pruned.view_as(pruned))


def _prune_nm(scores: torch.Tensor, pruned: torch.Tensor, n: int) -> None:
    """In every row of one group of M columns keep the n highest scores among the unpruned (ties
    to the lower index, as pruning/nm.py), in place."""
    ranked = scores.masked_fill(pruned, -torch.inf)
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    pruned.scatter_(1, order[:, n:], True)


def sparsegpt_prune(model: nn.Module, mask: Mask, removals: Mapping[str, int], data: CalibrationData, *,
                    nm: Optional[tuple[int, int]] = None, blocksize: int = DEFAULT_BLOCKSIZE,
                    damp: float = DEFAULT_DAMP) -> tuple[Mask, nn.Module]:
    """(mask, reconstructed copy of `model`): every layer named in `removals` pruned and
    reconstructed by SparseGPT step by step, each step's inputs captured through the steps before
    it as pruned and reconstructed. `model` is not changed."""
    def prune_layer(name: str, weight: torch.Tensor, statistics, alive: torch.Tensor):
        return sparsegpt_layer(weight, statistics.grams[name].to(weight.device), alive, removals[name],
                               nm=nm, blocksize=blocksize, damp=damp)

    return prune_step_by_step(model, mask, removals, data, gram=True, group_size=nm[1] if nm else None,
                              prune_layer=prune_layer)
