"""The TISEAN neighbour rule: hand-built windows, a loop-by-loop model of TISEAN's lyap_r, and
what the rescaling to [0, 1] does and does not change."""

import math
import warnings

import numpy as np
import pytest
import torch

from foundations.errors import UserError
from lyapunov.neighbours import nearest_tisean
from lyapunov.rosenstein import largest_lyapunov, min_series_length
from lyapunov.windows import window_starts, windowed_exponents

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nolds imports pkg_resources, which warns
    import nolds

PAPER = dict(emb_dim=2, lag=1, min_tsep=0)


def lyap_r_model(series, dim: int, delay: int, mindist: int, steps: int):
    """TISEAN 3.0.1 ``lyap_r`` as its C source runs it, loop by loop in double precision:
    rescale to [0, 1]; for eps = 1e-3, 1.1e-3, ... put the vectors that can be followed
    ``steps`` steps into a 256 x 256 grid of boxes (first and last delay coordinate, indices
    modulo 256, each box a list from the highest index down); each unsettled reference scans the
    3 x 3 boxes around its own, keeps the first strictly smaller squared distance below 1 (and
    within eps**2), is settled by any such candidate but paired only with one at a positive
    distance; paired references add log d**2 at every step where d > 0. Returns the printed
    curve (None where no pair counted), or "constant" / "stuck" where TISEAN exits / never ends."""
    x = [float(v) for v in series]
    low, high = min(x), max(x)
    if high - low == 0.0:
        return "constant"
    u = [(v - low) / (high - low) for v in x]
    reach, width = delay * (dim - 1), dim * delay
    last_reference = len(u) - reach - steps - 1 - mindist
    total, found = [0.0] * (steps + 1), [0] * (steps + 1)
    settled = [False] * (last_reference + 1)

    def distance2(a: int, b: int, limit: float) -> float | None:
        d2 = 0.0
        for k in range(0, width, delay):
            d2 += (u[a + k] - u[b + k]) * (u[a + k] - u[b + k])
            if d2 > limit:
                return None
        return d2

    eps = 1e-3
    while not all(settled):
        if eps > 10.0:
            return "stuck"  # every candidate is visible and none is below 1: TISEAN loops forever
        inverse = 1.0 / eps
        head, below = {}, {}
        for i in range(len(u) - reach - steps):
            box = (int(u[i] * inverse) & 255, int(u[i + reach] * inverse) & 255)
            below[i], head[box] = head.get(box, -1), i
        for ref in range(last_reference + 1):
            if settled[ref]:
                continue
            bx, by = int(u[ref] * inverse) & 255, int(u[ref + reach] * inverse) & 255
            best, best_d2 = -1, 1.0
            for cx in (bx - 1, bx, bx + 1):
                for cy in (by - 1, by, by + 1):
                    other = head.get((cx & 255, cy & 255), -1)
                    while other != -1:
                        d2 = distance2(ref, other, eps * eps) if abs(ref - other) > mindist else None
                        if d2 is not None and d2 < best_d2:
                            settled[ref] = True
                            if d2 > 0.0:
                                best, best_d2 = other, d2
                        other = below[other]
            if best != -1:
                for step in range(steps + 1):
                    d2 = distance2(ref + step, best + step, math.inf)
                    if d2 > 0.0:
                        found[step] += 1
                        total[step] += math.log(d2)
        eps *= 1.1
    return [total[s] / found[s] / 2.0 if found[s] else None for s in range(steps + 1)]


def _curve_from_pairs(u, pairs, emb_dim: int, lag: int, trajectory_len: int) -> np.ndarray:
    """Mean of log(d**2) / 2 at each step over the given (reference, neighbour) pairs."""
    u = np.asarray(u, dtype=np.float64)
    logs = [[] for _ in range(trajectory_len)]
    for i, j in pairs:
        for k in range(trajectory_len):
            d2 = sum((u[i + k + e * lag] - u[j + k + e * lag]) ** 2 for e in range(emb_dim))
            if d2 > 0:
                logs[k].append(math.log(d2) / 2)
    return np.array([np.mean(values) if values else -np.inf for values in logs])


def _tisean(series, **options):
    return largest_lyapunov(torch.tensor(series, dtype=torch.float64), neighbours="tisean", **options)


BACKENDS = pytest.mark.parametrize("backend", ["loop", "tensor"])


@BACKENDS
def test_three_way_tie_goes_to_the_first_box_visited_not_to_an_end_of_the_index_range(backend):
    # Vectors (x_i, x_{i+1}): X0 (.75, .5), X1 (.5, .5), X2 (.5, 0), X3 (0, .25), X4 (.25, .5),
    # X5 (.5, .75); X6 (.75, 1) only follows X5. min 0 and max 1: rescaling changes nothing.
    # X1 is at squared distance 1/16 from X0 (right of it), X4 (left) and X5 (above). It settles
    # at the first radius >= 1/4 (1e-3 * 1.1**58 = 0.2527), where X1 sits in box (1, 1), X4 in
    # (0, 1), X5 in (1, 2), X0 in (2, 1): TISEAN visits X4's box first. nolds takes X0 (the
    # lowest index); "the highest index" would be X5. Every other nearest neighbour is unique:
    # X0 -> X1, X2 -> X1, X3 -> X4, X4 -> X1, X5 -> X1.
    x = [0.75, 0.5, 0.5, 0.0, 0.25, 0.5, 0.75, 1.0]
    options = dict(PAPER, trajectory_len=2)
    tisean_pairs = [(0, 1), (1, 4), (2, 1), (3, 4), (4, 1), (5, 1)]
    expected = _curve_from_pairs(x, tisean_pairs, 2, 1, 2)
    # By hand: squared distances at step 0 and step 1 of those six pairs.
    by_hand = [
        np.mean(np.log([1 / 16, 1 / 16, 1 / 4, 1 / 8, 1 / 16, 1 / 16])) / 2,
        np.mean(np.log([1 / 4, 9 / 16, 5 / 16, 1 / 8, 9 / 16, 17 / 16])) / 2,
    ]
    np.testing.assert_allclose(expected, by_hand, rtol=0, atol=1e-15)
    result = _tisean(x, fit="diff", backend=backend, **options)
    np.testing.assert_allclose(result.curve.numpy(), expected, rtol=0, atol=1e-14)
    assert result.exponent.item() == pytest.approx(expected[1] - expected[0], abs=1e-14)
    assert lyap_r_model(x, 2, 1, 0, 1) == pytest.approx(list(expected), abs=1e-14)
    nolds_pairs = [(1, 0) if pair == (1, 4) else pair for pair in tisean_pairs]
    nolds_curve = largest_lyapunov(torch.tensor(x, dtype=torch.float64), fit="diff", **options).curve.numpy()
    np.testing.assert_allclose(nolds_curve, _curve_from_pairs(x, nolds_pairs, 2, 1, 2), rtol=0, atol=1e-14)


@BACKENDS
def test_duplicates_are_never_neighbours_and_ties_in_one_box_go_to_the_highest_index(backend):
    # X0 (0, 1), X1 (1, .5), X2 (.5, 0), X3 (0, 1), X4 (1, .25), X5 (.25, 1); X6 (1, .75).
    # X0 and X3 are exact duplicates: each settles on the first pass through the other, and its
    # only positive candidate below 1, X5 at 1/16, lies outside that pass's radius 1e-3, so
    # neither is paired (nolds pairs them with each other at distance 0). X5 is at 1/16 from
    # both X0 and X3, in one box: TISEAN takes X3 (listed first), nolds X0.
    x = [0.0, 1.0, 0.5, 0.0, 1.0, 0.25, 1.0, 0.75]
    options = dict(PAPER, trajectory_len=2)
    tisean_pairs = [(1, 4), (2, 4), (4, 1), (5, 3)]
    expected = _curve_from_pairs(x, tisean_pairs, 2, 1, 2)
    by_hand = [
        np.mean(np.log([1 / 16, 5 / 16, 1 / 16, 1 / 16])) / 2,
        np.mean(np.log([17 / 16, 1 / 16, 17 / 16, 1 / 4])) / 2,
    ]
    np.testing.assert_allclose(expected, by_hand, rtol=0, atol=1e-15)
    result = _tisean(x, fit="diff", backend=backend, **options)
    np.testing.assert_allclose(result.curve.numpy(), expected, rtol=0, atol=1e-14)
    assert lyap_r_model(x, 2, 1, 0, 1) == pytest.approx(list(expected), abs=1e-14)
    nolds_pairs = [(0, 3), (1, 4), (2, 4), (3, 0), (4, 1), (5, 0)]
    nolds_curve = largest_lyapunov(torch.tensor(x, dtype=torch.float64), fit="diff", **options).curve.numpy()
    np.testing.assert_allclose(nolds_curve, _curve_from_pairs(x, nolds_pairs, 2, 1, 2), rtol=0, atol=1e-14)


@pytest.mark.parametrize("delta, paired", [(2.0**-11, True), (2.0**-9, False)])
@BACKENDS
def test_a_duplicate_settles_a_reference_on_the_first_pass(delta: float, paired: bool, backend: str):
    # X0 (0, 1), X1 (1, 0), X2 (0, 1), X3 (1, d), X4 (d, 1), X5 (1, .5); X6 (.5, .25).
    # X0 and X2 are duplicates, with X4 at d**2: within the first radius 1e-3 for d = 2**-11
    # (both pair with X4), outside it for d = 2**-9 (neither is paired). X4's tie between the
    # duplicates X0 and X2 (one box) goes to X2; X1 <-> X3 at d**2; X5 -> X3.
    x = [0.0, 1.0, 0.0, 1.0, delta, 1.0, 0.5, 0.25]
    pairs = [(1, 3), (3, 1), (4, 2), (5, 3)] + ([(0, 4), (2, 4)] if paired else [])
    expected = _curve_from_pairs(x, pairs, 2, 1, 2)
    index, is_paired, stuck = nearest_tisean(*_distances(x, 2, 1, 0, 2))
    assert is_paired.tolist() == [[paired, True, paired, True, True, True]] and not stuck.any()
    assert [index[0, i].item() for i, _ in sorted(pairs)] == [j for _, j in sorted(pairs)]
    result = _tisean(x, fit="diff", backend=backend, **PAPER, trajectory_len=2)
    np.testing.assert_allclose(result.curve.numpy(), expected, rtol=0, atol=1e-14)
    assert lyap_r_model(x, 2, 1, 0, 1) == pytest.approx(list(expected), abs=1e-14)


def _distances(x, emb_dim: int, lag: int, min_tsep: int, trajectory_len: int):
    """Squared distances (1, M, M) as the rule sees them (Theiler window at inf), the series."""
    u = torch.tensor([x], dtype=torch.float64)
    m = len(x) - (emb_dim - 1) * lag - trajectory_len + 1
    vectors = torch.stack([u[0, e * lag : e * lag + m] for e in range(emb_dim)], dim=1)
    dist2 = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(dim=2)
    gap = (torch.arange(m)[:, None] - torch.arange(m)[None, :]).abs()
    return dist2.masked_fill(gap <= min_tsep, float("inf"))[None], u, (emb_dim - 1) * lag


def _random_windows(count: int, seed: int):
    """Windows where ties and duplicates are common: 6-decimal weight-like walks (the paper's
    data), 1-decimal noise, and small integer alphabets; random embedding parameters."""
    rng = np.random.default_rng(seed)
    for case in range(count):
        n = int(rng.integers(20, 60))
        kind = case % 4
        if kind == 0:
            series = np.round(0.05 + 1e-5 * rng.standard_normal(n).cumsum(), 6)
        elif kind == 1:
            series = np.round(-0.2 + 1e-4 * rng.standard_normal(n).cumsum(), 6)
        elif kind == 2:
            series = np.round(rng.standard_normal(n), 1)
        else:
            series = rng.integers(0, 4, n).astype(np.float64)
        params = dict(
            emb_dim=int(rng.integers(1, 4)),
            lag=int(rng.integers(1, 3)),
            min_tsep=int(rng.integers(0, 3)),
            trajectory_len=int(rng.integers(2, 6)),
        )
        yield series, params


@BACKENDS
def test_equals_the_loop_model_of_lyap_r_on_windows_full_of_ties(backend):
    differs = 0
    for series, params in _random_windows(200, seed=0):
        if len(series) < min_series_length(**params):
            continue
        expected = lyap_r_model(
            series, params["emb_dim"], params["lag"], params["min_tsep"], params["trajectory_len"] - 1
        )
        result = _tisean(series, fit="diff", backend=backend, **params)
        if isinstance(expected, str):
            assert result.degenerate.item(), (expected, params)
            continue
        curve = result.curve.numpy()
        for step, value in enumerate(expected):
            if value is None:
                assert np.isneginf(curve[step]), (params, step)
            else:
                assert abs(curve[step] - value) <= 1e-12, (params, step)
        if expected[0] is not None and expected[1] is not None:
            assert not result.degenerate.item()
            assert abs(result.exponent.item() - (expected[1] - expected[0])) <= 1e-12
        nolds_rule = largest_lyapunov(torch.tensor(series), fit="diff", **params)
        differs += abs(nolds_rule.exponent.item() - result.exponent.item()) > 1e-3
    assert differs > 50  # on such data the two rules really are different


def test_rescaling_shifts_the_curve_and_leaves_the_exponent_where_no_pair_changes():
    # Continuous data have no ties or duplicates: with min_tsep = 0 TISEAN pairs every vector
    # with its nearest one, as nolds does, and its curve is nolds' moved down by log(range).
    rng = np.random.default_rng(1)
    for _ in range(20):
        series = rng.standard_normal(60).cumsum()
        options = dict(emb_dim=2, lag=1, min_tsep=0, trajectory_len=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, (_, nolds_curve, _) = nolds.lyap_r(series, fit="poly", debug_data=True, **options)
        result = _tisean(series, **options)
        shift = math.log(series.max() - series.min())
        np.testing.assert_allclose(result.curve.numpy() + shift, nolds_curve, rtol=0, atol=1e-9)
        nolds_rule = largest_lyapunov(torch.tensor(series), **options)
        assert result.exponent.item() == pytest.approx(nolds_rule.exponent.item(), abs=1e-9)
        scaled = _tisean(1e3 * series - 7.0, **options)  # logs of distances shift uniformly
        assert scaled.exponent.item() == pytest.approx(result.exponent.item(), abs=1e-9)


@BACKENDS
def test_constant_and_never_ending_windows_are_degenerate(backend):
    constant = _tisean([0.25] * 12, fit="diff", backend=backend, **PAPER, trajectory_len=2)
    assert constant.degenerate.item() and constant.exponent.item() == 0.0  # TISEAN exits here
    # X0 (0, 1) is at squared distance 1 or more from X1 (1, 1), X2 (1, .75) and X3 (.75, .25):
    # TISEAN's search keeps only distances below 1 and never settles X0. nolds pairs it as usual.
    stuck = [0.0, 1.0, 1.0, 0.75, 0.25, 0.0]
    assert lyap_r_model(stuck, 2, 1, 0, 1) == "stuck"
    result = _tisean(stuck, fit="diff", backend=backend, degenerate_value=-1.0, **PAPER, trajectory_len=2)
    assert result.degenerate.item() and result.exponent.item() == -1.0
    nolds_rule = largest_lyapunov(torch.tensor(stuck, dtype=torch.float64), fit="diff", **PAPER, trajectory_len=2)
    assert not nolds_rule.degenerate.item()


def test_windowed_exponents_take_the_rule_and_bad_rules_are_user_errors():
    rng = np.random.default_rng(2)
    trajectory = np.round(0.1 + 1e-5 * rng.standard_normal((90, 3)).cumsum(axis=0), 6)
    options = dict(PAPER, trajectory_len=4, fit="diff", decimals=6, neighbours="tisean")
    result = windowed_exponents(torch.tensor(trajectory), 30, 0.1, **options)
    for w, start in enumerate(window_starts(90, 30, 0.1).tolist()):
        for p in range(3):
            curve = lyap_r_model(trajectory[start : start + 30, p], 2, 1, 0, 3)
            assert result.exponents[w, p].item() == pytest.approx(curve[1] - curve[0], abs=1e-12)
    with pytest.raises(UserError, match="unknown neighbours rule 'tiseen': choose one of nolds, tisean"):
        largest_lyapunov(torch.randn(50), neighbours="tiseen")


def test_on_rounded_data_the_rescaling_decides_ties_so_a_shift_can_change_the_exponent():
    # Exactly, (x - min) / (max - min) ignores a shift of the data; in floats the differences
    # of 6-decimal values carry their representation errors, which break equal decimal
    # distances one way or another. TISEAN's own result then depends on the shift (and so does
    # ours, equal to it on both), in a few percent of weight-like windows.
    rng = np.random.default_rng(3)
    windows = np.round(0.05 + 1e-4 * rng.standard_normal((400, 30)).cumsum(axis=1), 6)
    shifted = np.round(windows + 0.1, 6)
    options = dict(PAPER, trajectory_len=4, fit="diff")
    ours = _tisean(windows, **options).exponent.numpy()
    ours_shifted = _tisean(shifted, **options).exponent.numpy()
    moved = np.flatnonzero(np.abs(ours - ours_shifted) > 1e-6)
    assert 0 < len(moved) < 40
    for w in moved[:3]:
        for data, value in ((windows[w], ours[w]), (shifted[w], ours_shifted[w])):
            curve = lyap_r_model(data, 2, 1, 0, 3)
            assert value == pytest.approx(curve[1] - curve[0], abs=1e-12)
