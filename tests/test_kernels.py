"""Every tracking kernel against a slow, obviously right reference."""

import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter
from hypothesis import HealthCheck, given, settings
from scipy.optimize import linear_sum_assignment
from hypothesis import strategies as st

from tracking.imm import predict_tracks, update_track
from tracking.kernels import gate_pairs, pair_clusters, update_radial_row


def random_spd(rng, n, scale):
    a = rng.normal(0, 1, (n, n))
    return a @ a.T * scale + np.eye(n) * scale * 0.1


def reference_model(dt, q):
    """The nearly-constant-velocity model built without the code under test (Bar-Shalom, Li,
    Kirubarajan 2001, §6.2.2): state (east, north, v_east, v_north),

        F = [[I, Δt·I], [0, I]],   Q = q·[[Δt³/3·I, Δt²/2·I], [Δt²/2·I, Δt·I]]

    (continuous white-noise acceleration of power spectral density q), F written out here and Q
    from filterpy's ``Q_continuous_white_noise`` with the two axes as blocks of (position, velocity)."""
    F = np.array([[1.0, 0.0, dt, 0.0], [0.0, 1.0, 0.0, dt], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    Q = Q_continuous_white_noise(dim=2, dt=dt, spectral_density=q, block_size=2, order_by_dim=False)
    return F, Q


def test_reference_model_is_the_textbook_one():
    """Pin the reference itself, so that a change in filterpy's conventions cannot pass unnoticed."""
    F, Q = reference_model(2.0, 3.0)
    x = np.array([10.0, 20.0, 1.0, -2.0])
    np.testing.assert_array_equal(F @ x, [12.0, 16.0, 1.0, -2.0])
    np.testing.assert_allclose(Q[[0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 2, 3]], [8.0, 8.0, 6.0, 6.0, 6.0, 6.0])  # q·Δt³/3, q·Δt²/2, q·Δt
    np.testing.assert_array_equal(Q[[0, 0, 1, 2], [1, 3, 2, 3]], 0.0)  # axes independent
    np.testing.assert_array_equal(Q, Q.T)


def filterpy_filter(x, P):
    kf = KalmanFilter(dim_x=4, dim_z=2)
    kf.x = x.copy().reshape(4, 1)
    kf.P = P.copy()
    return kf


@pytest.mark.parametrize("seed", range(5))
def test_predict_and_update_match_filterpy(seed):
    """The tracker's kernels with one model (``predict_tracks``, ``update_track``) are filterpy's KalmanFilter."""
    rng = np.random.default_rng(seed)
    n = 6
    x = rng.normal(0, 100, (n, 4))
    P = np.array([random_spd(rng, 4, 10.0) for _ in range(n)])
    q = rng.uniform(0.1, 5.0, n)
    t_state = rng.uniform(0, 2, n)
    refs = [filterpy_filter(x[i], P[i]) for i in range(n)]
    alive = np.ones(n, bool)
    alive[2] = False
    t = 3.7
    xk, Pk, tk = x.copy(), P.copy(), t_state.copy()
    xm, Pm, mu = x[:, None].copy(), P[:, None].copy(), np.ones((n, 1))
    predict_tracks(xk, Pk, xm, Pm, mu, tk, alive, q, np.ones(1), np.ones(1), t)
    for i, kf in enumerate(refs):
        if not alive[i]:
            np.testing.assert_array_equal(xk[i], x[i])
            continue
        dt = t - t_state[i]
        kf.F, kf.Q = reference_model(dt, q[i])
        kf.predict()
        np.testing.assert_allclose(xk[i], kf.x[:, 0], rtol=0, atol=1e-9 * max(1, np.abs(kf.x).max()))
        np.testing.assert_allclose(Pk[i], kf.P, rtol=1e-9, atol=1e-9)
    rows = np.array([0, 3, 5])
    z = rng.normal(0, 100, (3, 2))
    R = np.array([random_spd(rng, 2, 25.0) for _ in range(3)])
    for k, i in enumerate(rows):  # a NaN radial velocity means a position update only
        update_track(xk, Pk, xm, Pm, mu, i, z[k], R[k], np.nan, 1.0, 1.0, 0.0, np.empty(1))
        kf = refs[i]
        kf.H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
        kf.R = R[k]
        kf.update(z[k].reshape(2, 1))
        np.testing.assert_allclose(xk[i], kf.x[:, 0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(Pk[i], kf.P, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(xm[i, 0], xk[i])
        assert mu[i, 0] == 1.0


def test_radial_velocity_update_matches_filterpy():
    rng = np.random.default_rng(9)
    x = rng.normal(0, 10, (3, 4))
    P = np.array([random_spd(rng, 4, 4.0) for _ in range(3)])
    los = rng.normal(0, 1, (3, 2))
    los /= np.linalg.norm(los, axis=1, keepdims=True)
    radial = np.array([1.5, -0.7, -2.0])
    sigma = np.array([0.5, 0.5, 0.3])
    for i in range(3):
        xk, Pk = x[i].copy(), P[i].copy()
        update_radial_row(xk, Pk, radial[i], sigma[i], los[i, 0], los[i, 1])
        kf = KalmanFilter(dim_x=4, dim_z=1)
        kf.x, kf.P = x[i].reshape(4, 1).copy(), P[i].copy()
        kf.H = np.array([[0.0, 0.0, los[i, 0], los[i, 1]]])
        kf.R = np.array([[sigma[i] ** 2]])
        kf.update(np.array([[radial[i]]]))
        np.testing.assert_allclose(xk, kf.x[:, 0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(Pk, kf.P, rtol=1e-9, atol=1e-9)


def brute_force_pairs(x, P, alive, young, dt_young, max_speed, z, R, gate):
    out = set()
    for i in range(len(x)):
        if not alive[i]:
            continue
        for j in range(len(z)):
            S = P[i, :2, :2] + R[j]
            v = z[j] - x[i, :2]
            d2 = v @ np.linalg.solve(S, v)
            if d2 > gate:
                continue
            if young[i] and np.hypot(*v) > max_speed * dt_young[i] + 3 * np.sqrt(np.trace(R[j])):
                continue
            out.add((i, j, round(float(d2), 6)))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_tracks=st.integers(0, 60), n_dets=st.integers(1, 80),
       cell=st.sampled_from([20.0, 75.0, 400.0, 0.0]))
def test_gating_matches_brute_force(seed, n_tracks, n_dets, cell):
    rng = np.random.default_rng(seed)
    x = np.zeros((n_tracks, 4))
    x[:, :2] = rng.uniform(-800, 800, (n_tracks, 2))
    P = np.array([random_spd(rng, 4, rng.uniform(1, 400)) for _ in range(n_tracks)]).reshape(n_tracks, 4, 4)
    alive = rng.random(n_tracks) < 0.9
    hits = np.where(rng.random(n_tracks) < 0.3, 1, 3).astype(np.int32)
    t_update = rng.uniform(0.0, 2.5, n_tracks)
    young, dt_young = hits == 1, 3.0 - t_update
    z = rng.uniform(-900, 900, (n_dets, 2))
    R = np.array([random_spd(rng, 2, rng.uniform(10, 2000)) for _ in range(n_dets)])
    gate = 13.8
    ti, dj, d2, logdet = gate_pairs(x, P, alive, hits, t_update, 3.0, 30.0, z, R, gate, cell)
    got = {(int(i), int(j), round(float(d), 6)) for i, j, d in zip(ti, dj, d2)}
    assert got == brute_force_pairs(x, P, alive, young, dt_young, 30.0, z, R, gate)
    assert len(got) == len(ti)  # no pair twice
    for i, j, ld in zip(ti, dj, logdet):
        assert ld == pytest.approx(np.log(np.linalg.det(P[i, :2, :2] + R[j])), rel=1e-9, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), n_tracks=st.integers(1, 60), n_dets=st.integers(1, 60),
       n_pairs=st.integers(0, 120))
def test_pair_clusters_match_scipy_connected_components(seed, n_tracks, n_dets, n_pairs):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    ti = rng.integers(0, n_tracks, n_pairs)
    dj = rng.integers(0, n_dets, n_pairs)
    labels = pair_clusters(ti, dj, n_tracks, n_dets)
    graph = coo_matrix((np.ones(n_pairs), (ti, n_tracks + dj)), shape=(n_tracks + n_dets,) * 2)
    reference = connected_components(graph, directed=False)[1][ti]
    # the same partition of the pairs, whatever the label values
    np.testing.assert_array_equal(labels[:, None] == labels[None, :], reference[:, None] == reference[None, :])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n_tracks=st.integers(1, 30), n_dets=st.integers(1, 30),
       n_pairs=st.integers(0, 90), batch=st.sampled_from([0, 12, 10**9]))
def test_assignment_is_the_optimum_of_the_whole_problem(seed, n_tracks, n_dets, n_pairs, batch, monkeypatch):
    """Lone pairs and clusters solved alone, in small batches or all in one: the optimum of one dense problem."""
    import tracking.associate as associate

    monkeypatch.setattr(associate, "_BATCH_ENTRIES", batch)
    rng = np.random.default_rng(seed)
    pairs = {(int(rng.integers(n_tracks)) * 3, int(rng.integers(n_dets))) for _ in range(n_pairs)}  # rows spread out
    ti = np.array([p[0] for p in pairs], np.int64)
    dj = np.array([p[1] for p in pairs], np.int64)
    cost = rng.uniform(0, 20, ti.size)
    tracks, dets, gated = associate.assign(ti, dj, cost, 3 * n_tracks, n_dets)
    assert len(set(tracks.tolist())) == tracks.size and len(set(dets.tolist())) == dets.size
    np.testing.assert_array_equal(gated, np.isin(np.arange(n_dets), dj))
    chosen = {(int(t), int(d)) for t, d in zip(tracks, dets)}
    assert chosen <= pairs
    lookup = dict(zip(pairs, cost)) if pairs else {}
    matrix = np.full((3 * n_tracks, n_dets), 1e9)
    matrix[ti, dj] = cost
    r, k = linear_sum_assignment(matrix)
    ok = matrix[r, k] < 1e9
    assert len(chosen) == ok.sum()
    assert sum(lookup[p] for p in chosen) == pytest.approx(matrix[r[ok], k[ok]].sum(), rel=1e-9, abs=1e-9)


def test_numba_cache_is_dropped_when_any_kernel_module_changes(tmp_path):
    """numba would keep a caller's cached kernel when only its callee's file changed (numba#1833)."""
    from tracking.numba_cache import drop_stale_cache

    (tmp_path / "a.py").write_text("def f(): return 1\n")
    (tmp_path / "b.py").write_text("def g(): return f()\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    entry = cache / "b.g-1.py311.nbi"
    entry.write_text("old")
    modules = ("a.py", "b.py")
    assert drop_stale_cache(tmp_path, modules) and not entry.exists()  # no digest yet: dropped
    entry.write_text("fresh")
    assert not drop_stale_cache(tmp_path, modules) and entry.exists()  # nothing changed: kept
    (tmp_path / "a.py").write_text("def f(): return 2\n")  # the callee changes, b.py does not
    assert drop_stale_cache(tmp_path, modules) and not entry.exists()
