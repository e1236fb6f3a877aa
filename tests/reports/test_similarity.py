"""Linear CKA and the orthogonal Procrustes distance against their closed forms, invariants, a
second implementation (the HSIC form with an explicit centring matrix) and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from reports.similarity import centered, compact, linear_cka, linear_cka_gram, procrustes_distance


def _random(n: int, p: int, seed: int) -> torch.Tensor:
    return torch.randn(n, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _orthogonal(p: int, seed: int) -> torch.Tensor:
    return torch.tensor(scipy.stats.ortho_group.rvs(p, random_state=seed))


def _hsic_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """CKA as Kornblith et al. write it: HSIC(K, L) = tr(K H L H) / (n-1)², K = X Xᵀ, H = I - 11ᵀ/n."""
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - torch.full((n, n), 1.0 / n, dtype=torch.float64)
    k, l_ = x.double() @ x.double().T, y.double() @ y.double().T

    def hsic(a, b):
        return torch.trace(a @ h @ b @ h) / (n - 1) ** 2

    return float(hsic(k, l_) / torch.sqrt(hsic(k, k) * hsic(l_, l_)))


def test_cka_of_identical_representations_is_one():
    x = _random(50, 7, 0)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka_gram(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x, y = _random(60, 8, 1), _random(60, 5, 2)
    reference = linear_cka(x, y)
    assert linear_cka(3.5 * x @ _orthogonal(8, 3), y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(x, 0.01 * y @ _orthogonal(5, 4)) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(x + 7.0, y) == pytest.approx(reference, abs=1e-12)  # centring: a shift is nothing


def test_cka_is_not_invariant_to_an_anisotropic_scaling():
    x = _random(60, 4, 5)
    stretched = x * torch.tensor([10.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert linear_cka(x, stretched) < 0.9


def test_cka_hand_case():
    """Two one-dimensional representations: CKA is the squared correlation of the two columns."""
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    y = torch.tensor([[1.0], [3.0], [2.0], [5.0]])
    r = np.corrcoef(x[:, 0].numpy(), y[:, 0].numpy())[0, 1]
    assert linear_cka(x, y) == pytest.approx(r ** 2, abs=1e-12)


def test_cka_orthogonal_features_is_zero():
    """Centred columns that are orthogonal to each other: no shared linear structure."""
    x = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])
    y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert linear_cka(x, y) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n, p, q", [(40, 6, 9), (30, 50, 70), (20, 3, 200)])
def test_feature_form_equals_the_kernel_form_on_random_data(n, p, q):
    x, y = _random(n, p, 6), _random(n, q, 7) + 0.3 * _random(n, 1, 8)
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-10)
    assert linear_cka_gram(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-10)


def test_compact_keeps_the_gram_matrix():
    x = centered(_random(10, 40, 9))
    small = compact(x)
    assert small.shape == (10, 10)
    torch.testing.assert_close(small @ small.T, x @ x.T)


def test_conv_outputs_are_flattened():
    x = _random(12, 2 * 3 * 3, 10)
    assert linear_cka(x.reshape(12, 2, 3, 3), x) == pytest.approx(1.0, abs=1e-12)


def test_no_variance_has_no_similarity():
    assert math.isnan(linear_cka(torch.ones(5, 3), _random(5, 2, 11)))
    assert math.isnan(procrustes_distance(torch.zeros(5, 3), _random(5, 2, 11)))


def _scipy_procrustes(x: torch.Tensor, y: torch.Tensor) -> float:
    """min over orthogonal R of ||X R - Y||²_F, with R from scipy, on the centred unit-norm sides."""
    a, b = (centered(t).numpy() for t in (x, y))
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    rotation, _ = scipy.linalg.orthogonal_procrustes(a, b)
    return float(np.linalg.norm(a @ rotation - b) ** 2)


@pytest.mark.parametrize("n, p", [(30, 5), (25, 40)])
def test_procrustes_equals_scipy(n, p):
    x, y = _random(n, p, 12), _random(n, p, 13) + 0.5 * _random(n, p, 12)
    assert procrustes_distance(x, y) == pytest.approx(_scipy_procrustes(x, y), abs=1e-10)


def test_procrustes_of_a_rotated_scaled_copy_is_zero_and_of_unrelated_data_is_large():
    x = _random(40, 6, 14)
    assert procrustes_distance(x, 2.0 * x @ _orthogonal(6, 15) + 1.0) == pytest.approx(0.0, abs=1e-10)
    assert procrustes_distance(x, _random(40, 6, 16)) > 0.5


def test_procrustes_with_different_widths_pads_with_zeros():
    """Layers of different widths: the narrower side is zero-padded (scipy needs equal shapes)."""
    x, y = _random(30, 4, 17), _random(30, 7, 18)
    padded = torch.cat([x, torch.zeros(30, 3, dtype=torch.float64)], dim=1)
    assert procrustes_distance(x, y) == pytest.approx(_scipy_procrustes(padded, y), abs=1e-10)


def test_mismatched_examples_are_refused():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(_random(5, 2, 0), _random(6, 2, 0))
