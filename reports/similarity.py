"""How alike two representations of the same examples are: linear CKA and the orthogonal
Procrustes distance.

X (n, p) and Y (n, q) hold one row per example, the same examples in the same order; p and q may
differ (a layer of 300 units against one of 100). Both measures centre each column first.

Linear CKA (Kornblith et al. 2019, "Similarity of neural network representations revisited"):

    CKA(X, Y) = ||Yᵀ X||²_F / (||Xᵀ X||_F · ||Yᵀ Y||_F)

which is HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the linear kernels K = X Xᵀ, L = Y Yᵀ
(`linear_cka_gram`). It lies in [0, 1], is 1 for X = Y, and does not change under an orthogonal
transform or an isotropic scaling of either side (it does under other invertible maps).

Orthogonal Procrustes distance (Ding, Denain & Steinhardt 2021, "Grounding representational
similarity with statistical testing"), with X and Y centred and scaled to unit Frobenius norm:

    d(X, Y) = min over orthogonal R of ||X R - Y||²_F = 2 - 2 ||Xᵀ Y||_*     (nuclear norm)

in [0, 2], 0 for X = Y (up to rotation and scale). Unlike CKA it is a metric and is sensitive to
directions of small variance.

Both depend on X only through its Gram matrix X Xᵀ, so a layer wider than the number of examples
is first replaced by n columns with the same Gram matrix (`compact`): cost O(n² · min(n, p)).
A side with no variance (a dead layer) has no similarity: NaN.
"""

from __future__ import annotations

import math

import torch


def centered(x: torch.Tensor) -> torch.Tensor:
    """(n, p) as float64 with every column's mean over the examples removed; a conv output
    (n, C, H, W) is flattened to (n, C·H·W) first."""
    x = x.reshape(x.shape[0], -1).double()
    return x - x.mean(0, keepdim=True)


def compact(x: torch.Tensor) -> torch.Tensor:
    """`x` itself when it has no more columns than rows, else U·S of its thin SVD: n columns with the
    same Gram matrix x xᵀ (so the same CKA and Procrustes distance to anything)."""
    if x.shape[1] <= x.shape[0]:
        return x
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    return u * s


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same n examples, in the feature form."""
    _same_examples(x, y)
    x, y = compact(centered(x)), compact(centered(y))
    denominator = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    if denominator == 0:
        return math.nan
    return float(torch.linalg.matrix_norm(y.T @ x) ** 2 / denominator)


def linear_cka_gram(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA in the kernel form, from the centred Gram matrices (n × n: for small n)."""
    _same_examples(x, y)
    x, y = centered(x), centered(y)
    k, l_ = x @ x.T, y @ y.T
    denominator = torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(l_)
    return math.nan if denominator == 0 else float((k * l_).sum() / denominator)


def procrustes_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """2 - 2·||Xᵀ Y||_* of the centred representations scaled to unit Frobenius norm, in [0, 2]."""
    _same_examples(x, y)
    x, y = compact(centered(x)), compact(centered(y))
    nx, ny = torch.linalg.matrix_norm(x), torch.linalg.matrix_norm(y)
    if nx == 0 or ny == 0:
        return math.nan
    nuclear = torch.linalg.matrix_norm((x / nx).T @ (y / ny), ord="nuc")
    return float(min(2.0, max(0.0, 2 - 2 * float(nuclear))))


MEASURES = {"cka": linear_cka, "procrustes": procrustes_distance}


def _same_examples(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"the two representations must hold the same examples: {x.shape[0]} vs {y.shape[0]} rows")
    if x.shape[0] < 2:
        raise ValueError("similarity needs at least two examples")
