"""tracking.track_fusion against slow, obviously right references: a grid search over ω for the
CI weight, Stone Soup's CovarianceIntersection for the fused state, a loop for the distances,
scipy's assignment on the whole matrix, and Monte-Carlo NEES for consistency under correlation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from tracking.kernels import predict_row, process_noise, transition, update_position_row
from tracking.track_fusion import (assign_tracks, chi2_gate, ci_weight, ci_weight_fast, covariance_intersection,
                                   difference_distance2, predict_states)


def _track_covariance(rng: np.random.Generator) -> np.ndarray:
    """A tracker-like 4×4 covariance: an elongated, rotated position ellipse (a radar's range ×
    cross-range), velocity variances, and position–velocity correlation; positive definite."""
    while True:
        sigma = rng.uniform(3.0, 150.0, 2)
        angle = rng.uniform(0.0, np.pi)
        R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        P = np.zeros((4, 4))
        P[:2, :2] = R @ np.diag(sigma**2) @ R.T
        P[2:, 2:] = np.diag(rng.uniform(0.2, 4.0, 2) ** 2)
        rho = rng.uniform(-0.6, 0.6, 2)
        P[0, 2] = P[2, 0] = rho[0] * np.sqrt(P[0, 0] * P[2, 2])
        P[1, 3] = P[3, 1] = rho[1] * np.sqrt(P[1, 1] * P[3, 3])
        if np.linalg.eigvalsh(P).min() > 1e-6:
            return P


def _pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.array([_track_covariance(rng) for _ in range(n)]), np.array([_track_covariance(rng) for _ in range(n)])


def _fused_logdet(w: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """ln det C(ω) = −ln det(ω A⁻¹ + (1 − ω) B⁻¹), written out from the definition."""
    info = w[..., None, None] * np.linalg.inv(A) + (1.0 - w)[..., None, None] * np.linalg.inv(B)
    return -np.linalg.slogdet(info)[1]


def test_weight_reaches_the_grid_search_optimum_of_det():
    A, B = _pairs(1, 400)
    grid = np.linspace(0.0, 1.0, 4001)
    best = np.min([_fused_logdet(np.full(len(A), g), A, B) for g in grid], axis=0)
    ours = _fused_logdet(ci_weight(A, B), A, B)
    ratio = np.exp(ours - best)  # det C(ω) / det C(ω_grid)
    assert ratio.max() <= 1.0 + 1e-4, ratio.max()
    # the textbook fast CI (Franken–Hüpper) is measurably off on these shapes: the reason it is not used
    fast = np.exp(_fused_logdet(ci_weight_fast(A, B), A, B) - best)
    assert np.median(fast) > 1.05


def test_weight_special_cases():
    P = _track_covariance(np.random.default_rng(2))
    same = ci_weight(P[None], P[None])[0]
    assert same == pytest.approx(0.5, abs=1e-6)
    assert ci_weight((P / 9.0)[None], P[None])[0] == pytest.approx(1.0)  # A inside B: take A alone
    assert ci_weight(P[None], (P / 9.0)[None])[0] == pytest.approx(0.0)
    blocks = np.diag([10.0, 10.0, 100.0, 100.0]), np.diag([100.0, 100.0, 10.0, 10.0])
    assert ci_weight(blocks[0][None], blocks[1][None])[0] == pytest.approx(0.5, abs=1e-9)  # symmetric roles


def test_fused_state_matches_stone_soup_covariance_intersection():
    stonesoup = pytest.importorskip("stonesoup")
    from stonesoup.mixturereducer.gaussianmixture import CovarianceIntersection
    from stonesoup.types.state import GaussianState

    del stonesoup
    A, B = _pairs(3, 25)
    rng = np.random.default_rng(4)
    xa, xb = rng.normal(0, 50, (25, 4)), rng.normal(0, 50, (25, 4))
    c, C, w = covariance_intersection(xa, A, xb, B)
    for i in range(25):
        ref = CovarianceIntersection.merge_components(GaussianState(xa[i][:, None], A[i]),
                                                      GaussianState(xb[i][:, None], B[i]), weights=[w[i], 1 - w[i]])
        np.testing.assert_allclose(c[i], np.asarray(ref.state_vector, float).ravel(), rtol=1e-7, atol=1e-6)
        np.testing.assert_allclose(C[i], np.asarray(ref.covar, float), rtol=1e-7, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_fused_volume_never_exceeds_either_side(seed):
    """ω = 0 and ω = 1 are candidates, so the optimum is at least as tight as the better input."""
    A, B = _pairs(seed, 4)
    _, C, w = covariance_intersection(np.zeros((4, 4)), A, np.zeros((4, 4)), B)
    assert ((w >= 0) & (w <= 1)).all()
    logdet = np.linalg.slogdet(C)[1]
    assert (logdet <= np.minimum(np.linalg.slogdet(A)[1], np.linalg.slogdet(B)[1]) + 1e-9).all()
    assert (np.linalg.eigvalsh(C) > 0).all()


def _nees(error: np.ndarray, P: np.ndarray) -> np.ndarray:
    return np.einsum("ni,ni->n", error, np.linalg.solve(P, error[..., None])[..., 0])


def _band(dof: int, samples: int) -> tuple[float, float]:
    """95 % band of the mean NEES of ``samples`` independent χ²(dof) draws."""
    return chi2.ppf(0.025, dof * samples) / samples, chi2.ppf(0.975, dof * samples) / samples


def test_ci_consistent_with_a_strongly_shared_error():
    """Errors eₐ = s + uₐ, e_b = s + u_b with a common part s (cross-covariance S, unknown to the
    fusion): the CI NEES stays inside or below the χ² band; the naive fusion that assumes
    independence (the Kalman combination) is far above it — the test can fail."""
    rng = np.random.default_rng(5)
    runs = 4000
    S = np.diag([400.0, 100.0, 1.0, 0.25])
    Ua, Ub = np.diag([50.0, 900.0, 0.3, 2.0]), np.diag([900.0, 50.0, 2.0, 0.3])
    shared = rng.multivariate_normal(np.zeros(4), S, runs)
    truth = rng.normal(0, 1000, (runs, 4))
    xa = truth + shared + rng.multivariate_normal(np.zeros(4), Ua, runs)
    xb = truth + shared + rng.multivariate_normal(np.zeros(4), Ub, runs)
    A, B = np.broadcast_to(S + Ua, (runs, 4, 4)), np.broadcast_to(S + Ub, (runs, 4, 4))
    c, C, _ = covariance_intersection(xa, A, xb, B)
    low, high = _band(4, runs)
    assert _nees(c - truth, C).mean() <= high
    naive_C = np.linalg.inv(np.linalg.inv(A) + np.linalg.inv(B))
    naive_c = np.einsum("nij,nj->ni", naive_C, np.einsum("nij,nj->ni", np.linalg.inv(A), xa)
                        + np.einsum("nij,nj->ni", np.linalg.inv(B), xb))
    assert _nees(naive_c - truth, naive_C).mean() > high


def _filter(rng, truth_x, R, q, steps, dt):
    """A CV Kalman filter with the tracker's own kernels, over one truth run; returns (x, P) at the end."""
    x = truth_x[0] + rng.multivariate_normal(np.zeros(4), np.diag([R[0, 0], R[1, 1], 4.0, 4.0]))
    P = np.diag([R[0, 0], R[1, 1], 4.0, 4.0])
    for k in range(1, steps):
        predict_row(x, P, dt, q)
        z = truth_x[k, :2] + rng.multivariate_normal(np.zeros(2), R)
        update_position_row(x, P, z, R)
    return x, P


def test_ci_consistent_on_two_filters_sharing_process_noise():
    """Two trackers follow one target (same random accelerations: their errors correlate through
    the common process noise) with independent sensors; at the end CI's NEES is within the χ²
    band or below, over 300 seeded runs."""
    rng = np.random.default_rng(6)
    q, dt, steps, runs = 2.0, 1.0, 30, 300
    Ra = np.array([[400.0, 0.0], [0.0, 25.0]])
    Rb = np.array([[25.0, 0.0], [0.0, 400.0]])
    errors, Cs = [], []
    F, Q = transition(dt), process_noise(dt, q)
    for _ in range(runs):
        truth = np.zeros((steps, 4))
        truth[0] = (0.0, 0.0, 5.0, 2.0)
        for k in range(1, steps):
            truth[k] = F @ truth[k - 1] + rng.multivariate_normal(np.zeros(4), Q)
        xa, A = _filter(rng, truth, Ra, q, steps, dt)
        xb, B = _filter(rng, truth, Rb, q, steps, dt)
        c, C, _ = covariance_intersection(xa[None], A[None], xb[None], B[None])
        errors.append(c[0] - truth[-1])
        Cs.append(C[0])
    nees = _nees(np.array(errors), np.array(Cs))
    _, high = _band(4, runs)
    assert nees.mean() <= high, nees.mean()


def test_difference_distance_matches_a_loop():
    A, B = _pairs(7, 5)
    rng = np.random.default_rng(8)
    xa, xb = rng.normal(0, 100, (5, 4)), rng.normal(0, 100, (3, 4))
    for dims in (2, 4):
        d2 = difference_distance2(xa, A, xb, B[:3], dims)
        for i in range(5):
            for j in range(3):
                delta = xa[i, :dims] - xb[j, :dims]
                expected = delta @ np.linalg.inv(A[i, :dims, :dims] + B[j, :dims, :dims]) @ delta
                assert d2[i, j] == pytest.approx(expected, rel=1e-9)
    assert difference_distance2(xa[:0], A[:0], xb, B[:3]).shape == (0, 3)


def test_difference_distance_is_chi2_for_one_target():
    rng = np.random.default_rng(9)
    n = 3000
    A, B = _pairs(10, 1)
    truth = rng.normal(0, 500, (n, 4))
    xa = truth + rng.multivariate_normal(np.zeros(4), A[0], n)
    xb = truth + rng.multivariate_normal(np.zeros(4), B[0], n)
    d2 = np.array([difference_distance2(xa[i:i + 1], A, xb[i:i + 1], B)[0, 0] for i in range(n)])
    low, high = _band(4, n)
    assert low <= d2.mean() <= high
    assert np.mean(d2 <= chi2_gate(0.99, 4)) == pytest.approx(0.99, abs=0.01)


def test_assign_tracks_is_the_gated_optimum():
    rng = np.random.default_rng(11)
    for _ in range(30):
        d2 = rng.uniform(0, 20, (6, 5))
        gate = 9.0
        rows, cols = assign_tracks(d2, gate)
        cost = np.where(d2 <= gate, d2, 1e6)
        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] < 1e6
        assert len(set(rows.tolist())) == rows.size and len(set(cols.tolist())) == cols.size
        assert (d2[rows, cols] <= gate).all()
        assert rows.size == keep.sum()
        assert d2[rows, cols].sum() == pytest.approx(d2[r[keep], c[keep]].sum())


def test_predict_states_is_the_cv_model():
    A, _ = _pairs(12, 3)
    x = np.random.default_rng(13).normal(0, 10, (3, 4))
    dt = np.array([0.0, 2.5, -1.0])
    px, pP = predict_states(x, A, dt, 0.7)
    np.testing.assert_allclose(px[1], transition(2.5) @ x[1])
    np.testing.assert_allclose(pP[1], transition(2.5) @ A[1] @ transition(2.5).T + process_noise(2.5, 0.7))
    np.testing.assert_array_equal(px[[0, 2]], x[[0, 2]])  # no time to cover, or a newer state: as it is
    np.testing.assert_array_equal(pP[[0, 2]], A[[0, 2]])
