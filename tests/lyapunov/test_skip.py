"""Leaving static series out of the divergence computation changes no exponent and no flag."""

import pytest
import torch

from lyapunov import largest_lyapunov

PAPER = dict(emb_dim=2, lag=1, min_tsep=0, trajectory_len=4, fit="diff", decimals=6, tol=9e-6)


@pytest.mark.parametrize("neighbours, backend", [("tisean", "tensor"), ("nolds", "tensor"), ("nolds", "loop")])
@pytest.mark.parametrize("chunk", [1 << 14, 1 << 19])
def test_skipping_degenerate_series_keeps_every_exponent(neighbours, backend, chunk):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(900, 50, dtype=torch.float64, generator=generator).cumsum(1) * 1e-3
    x[::3] = 0.25  # static weights
    x[1::7] *= 1e-4  # moving by less than the static range
    whole = largest_lyapunov(x, neighbours=neighbours, backend=backend, **PAPER)
    skipped = largest_lyapunov(x, neighbours=neighbours, backend=backend, skip_degenerate=True,
                               max_chunk_elements=chunk, **PAPER)
    assert whole.degenerate.float().mean() > 0.3
    assert torch.equal(whole.exponent, skipped.exponent) and torch.equal(whole.degenerate, skipped.degenerate)
    live = ~whole.degenerate
    assert torch.equal(whole.curve[live], skipped.curve[live])
    static = ~(x.amax(1) - x.amin(1) > 9e-6)
    assert skipped.curve[static].isnan().all()
