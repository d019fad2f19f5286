"""Numba kernels of the tracker: one state's predict and updates, and over the track
table gating, and the split of the gated pairs into lone ones and block-diagonal
assignment problems.

State per track ``x = (e, n, vₑ, vₙ)`` with covariance ``P`` (4×4).  The motion
model is nearly constant velocity with continuous white-noise acceleration of
spectral density ``q`` (m²/s³)::

    F(Δt) = [[1, 0, Δt, 0], [0, 1, 0, Δt], [0, 0, 1, 0], [0, 0, 0, 1]]
    Q(Δt) = q · [[Δt³/3, 0, Δt²/2, 0], [0, Δt³/3, 0, Δt²/2],
                 [Δt²/2, 0, Δt, 0],    [0, Δt²/2, 0, Δt]]
    x ← F x,   P ← F P Fᵀ + Q

(Bar-Shalom, Li, Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, §6.2.2).  Position measurements ``z = H x + w``, ``w ~ N(0, R)`` with
``H = [I₂ 0]``; radial velocity ``ṙ = uᵀ v`` with ``u`` the unit line of sight.
Updates use the Joseph form ``P ← (I − K H) P (I − K H)ᵀ + K R Kᵀ``, as filterpy's
``KalmanFilter.update`` does, so the two agree to rounding.

Kernels take and return arrays (the row kernels update one track's views in
place); they never raise, log or read mutable globals.  None uses ``fastmath``:
NaN must stay NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["predict_row", "gate_pairs", "update_position_row", "update_radial_row", "rival_problems", "pair_clusters",
           "cluster_batches", "transition", "process_noise"]


@njit(cache=True)
def transition(dt):
    F = np.eye(4)
    F[0, 2] = dt
    F[1, 3] = dt
    return F


@njit(cache=True)
def process_noise(dt, q):
    Q = np.zeros((4, 4))
    a, b, c = q * dt**3 / 3.0, q * dt**2 / 2.0, q * dt
    Q[0, 0] = Q[1, 1] = a
    Q[0, 2] = Q[2, 0] = Q[1, 3] = Q[3, 1] = b
    Q[2, 2] = Q[3, 3] = c
    return Q


@njit(cache=True)
def predict_row(x, P, dt, q):
    """One state ``x`` (4) and ``P`` (4×4) predicted by ``dt`` with noise density ``q``, in place.

    F P Fᵀ written out in 2×2 blocks, P = [[A, B], [Bᵀ, C]] (position, velocity):
    A ← A + Δt (B + Bᵀ) + Δt² C,  B ← B + Δt C,  C unchanged; then + Q.  No temporaries:
    with ~100 tracks a step the allocations of the matrix form cost more than the arithmetic.
    """
    x[0] += dt * x[2]
    x[1] += dt * x[3]
    for r in range(2):  # A first: it reads the old B
        for c in range(2):
            P[r, c] += dt * (P[r + 2, c] + P[r, c + 2]) + dt * dt * P[r + 2, c + 2]
    for r in range(2):
        for c in range(2):
            P[r, c + 2] += dt * P[r + 2, c + 2]
            P[r + 2, c] += dt * P[r + 2, c + 2]
    a, b, v = q * dt**3 / 3.0, q * dt**2 / 2.0, q * dt
    P[0, 0] += a
    P[1, 1] += a
    P[0, 2] += b
    P[2, 0] += b
    P[1, 3] += b
    P[3, 1] += b
    P[2, 2] += v
    P[3, 3] += v


@njit(cache=True)
def _cell(v, size):
    return np.int64(np.floor(v / size))


@njit(cache=True)
def _mahalanobis(x, P, i, z, R, j):
    """(d², ln|S|) of detection j against track i; d² = -1 when S is singular."""
    s00 = P[i, 0, 0] + R[j, 0, 0]
    s01 = P[i, 0, 1] + R[j, 0, 1]
    s11 = P[i, 1, 1] + R[j, 1, 1]
    det = s00 * s11 - s01 * s01
    if det <= 0.0:
        return -1.0, 0.0
    v0 = z[j, 0] - x[i, 0]
    v1 = z[j, 1] - x[i, 1]
    return (s11 * v0 * v0 - 2.0 * s01 * v0 * v1 + s00 * v1 * v1) / det, np.log(det)


@njit(cache=True)
def gate_pairs(x, P, alive, hits, t_update, t, max_speed, z, R, gate, cell_m):
    """All (track, detection) pairs inside the chi-square gate, via a uniform grid.

    Detections are bucketed in square cells of ``cell_m`` (≤ 0: four times the tracks'
    median gate radius, at least 50 m); each track visits only the cells within its gate
    radius ``√(γ·(tr P_pos + max tr R))`` (an upper bound of the gate ellipse's
    semi-axis), one sorted run of keys per column of cells, so the cost grows with
    the number of nearby pairs, not tracks × detections.  A pair is kept when
    ``d² = νᵀ S⁻¹ ν ≤ γ`` with ``ν = z − H x``, ``S = P_pos + R``.  A one-point track
    (``hits == 1``, no velocity yet) must also be reachable at ``max_speed`` since
    its detection: ``|ν| ≤ max_speed · (t − t_update) + 3 √tr R``.
    Returns (track rows, detection rows, d², ln|S|).
    """
    n_det = z.shape[0]
    r_max = 0.0
    for j in range(n_det):
        r_max = max(r_max, R[j, 0, 0] + R[j, 1, 1])
    rows = np.flatnonzero(alive)
    radii = np.empty(rows.shape[0])
    for k in range(rows.shape[0]):
        i = rows[k]
        radii[k] = np.sqrt(gate * (P[i, 0, 0] + P[i, 1, 1] + r_max))
    if cell_m <= 0.0:  # most gates then span one or two columns of cells: fewer searches, still few detections each
        cell_m = max(50.0, 4.0 * np.median(radii)) if rows.shape[0] else 50.0
    big = np.int64(1) << 31
    keys = np.empty(n_det, np.int64)
    for j in range(n_det):
        keys[j] = _cell(z[j, 0], cell_m) * big + _cell(z[j, 1], cell_m)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    out_t, out_d, out_d2, out_ld = [0][:0], [0][:0], [0.0][:0], [0.0][:0]
    for k in range(rows.shape[0]):
        i, radius = rows[k], radii[k]
        cx0, cx1 = _cell(x[i, 0] - radius, cell_m), _cell(x[i, 0] + radius, cell_m)
        cy0, cy1 = _cell(x[i, 1] - radius, cell_m), _cell(x[i, 1] + radius, cell_m)
        everything = (cx1 - cx0 + 1) * (cy1 - cy0 + 1) > n_det + 16
        if everything:  # a gate wider than the grid is worth: look at every detection once
            cx0, cx1, cy0, cy1 = 0, 0, 0, 0
        for cx in range(cx0, cx1 + 1):
            if everything:
                lo, hi = 0, n_det
            else:  # the cells (cx, cy0…cy1) are one run of the sorted keys
                lo = np.searchsorted(sorted_keys, cx * big + cy0)
                hi = np.searchsorted(sorted_keys, cx * big + cy1, side="right")
            for idx in range(lo, hi):
                j = order[idx]
                d2, logdet = _mahalanobis(x, P, i, z, R, j)
                if d2 < 0.0 or d2 > gate:
                    continue
                if hits[i] == 1:
                    reach = max_speed * (t - t_update[i]) + 3.0 * np.sqrt(R[j, 0, 0] + R[j, 1, 1])
                    if (z[j, 0] - x[i, 0]) ** 2 + (z[j, 1] - x[i, 1]) ** 2 > reach * reach:
                        continue
                out_t.append(i)
                out_d.append(j)
                out_d2.append(d2)
                out_ld.append(logdet)
    return np.array(out_t, np.int64), np.array(out_d, np.int64), np.array(out_d2), np.array(out_ld)


_LOG_2PI = np.log(2.0 * np.pi)


@njit(cache=True)
def _joseph(P, K, m, r):
    """P ← (I − K H) P (I − K H)ᵀ + K R Kᵀ for ``H`` selecting ``m`` (rows of ``K`` ↔ H's rows).

    ``K`` is 4×k, ``m`` (k×4) is H, ``r`` (k×k) is R.
    """
    k = K.shape[1]
    A = np.eye(4)
    for a in range(4):
        for b in range(4):
            for c in range(k):
                A[a, b] -= K[a, c] * m[c, b]
    AP = np.zeros((4, 4))  # loops, not BLAS: a 4×4 product costs less than the call
    for a in range(4):
        for b in range(4):
            for c in range(4):
                AP[a, b] += A[a, c] * P[c, b]
    for a in range(4):
        for b in range(a, 4):
            v = 0.0
            for c in range(4):
                v += AP[a, c] * A[b, c]
            for c in range(k):
                for d in range(k):
                    v += K[a, c] * r[c, d] * K[b, d]
            P[a, b] = v
            P[b, a] = v


@njit(cache=True)
def update_position_row(x, P, z, R):
    """Kalman update of one state with a position ``z`` (2), ``R`` (2×2), in place (Joseph form).

    Returns the measurement log-likelihood ln N(ν; 0, S) = −½ (νᵀS⁻¹ν + ln|S| + 2 ln 2π).
    """
    s00, s01, s11 = P[0, 0] + R[0, 0], P[0, 1] + R[0, 1], P[1, 1] + R[1, 1]
    det = s00 * s11 - s01 * s01
    i00, i01, i11 = s11 / det, -s01 / det, s00 / det
    v0, v1 = z[0] - x[0], z[1] - x[1]
    K = np.empty((4, 2))
    for a in range(4):  # K = P Hᵀ S⁻¹ with P Hᵀ = P[:, :2]
        K[a, 0] = P[a, 0] * i00 + P[a, 1] * i01
        K[a, 1] = P[a, 0] * i01 + P[a, 1] * i11
    for a in range(4):
        x[a] += K[a, 0] * v0 + K[a, 1] * v1
    H = np.zeros((2, 4))
    H[0, 0] = H[1, 1] = 1.0
    _joseph(P, K, H, R)
    d2 = v0 * (i00 * v0 + i01 * v1) + v1 * (i01 * v0 + i11 * v1)
    return -0.5 * (d2 + np.log(det) + 2.0 * _LOG_2PI)


@njit(cache=True)
def update_radial_row(x, P, radial, sigma, u0, u1):
    """Scalar update with a radial velocity ``ṙ = uᵀv`` (H = [0, 0, uₑ, uₙ]), in place; log-likelihood."""
    H = np.zeros((1, 4))
    H[0, 2], H[0, 3] = u0, u1
    s = sigma * sigma
    for a in range(2, 4):
        for b in range(2, 4):
            s += H[0, a] * P[a, b] * H[0, b]
    K = np.empty((4, 1))
    for a in range(4):
        K[a, 0] = (P[a, 2] * u0 + P[a, 3] * u1) / s
    nu = radial - (x[2] * u0 + x[3] * u1)
    for a in range(4):
        x[a] += K[a, 0] * nu
    r = np.empty((1, 1))
    r[0, 0] = sigma * sigma
    _joseph(P, K, H, r)
    return -0.5 * (nu * nu / s + np.log(s) + _LOG_2PI)


@njit(cache=True)
def _root(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]  # path halving
        a = parent[a]
    return a


@njit(cache=True)
def pair_clusters(track_index, det_index, n_tracks, n_dets):
    """Connected component of each gated pair in the bipartite track/detection graph.

    Union-find over nodes 0…n_tracks−1 (tracks) and n_tracks… (detections); labels
    are the pairs' root nodes, so two pairs share a label iff they share a cluster.
    """
    parent = np.arange(n_tracks + n_dets)
    for k in range(track_index.shape[0]):
        a = _root(parent, track_index[k])
        b = _root(parent, n_tracks + det_index[k])
        if a != b:
            parent[max(a, b)] = min(a, b)
    labels = np.empty(track_index.shape[0], np.int64)
    for k in range(track_index.shape[0]):
        labels[k] = _root(parent, track_index[k])
    return labels


@njit(cache=True)
def cluster_batches(track_index, det_index, n_tracks, n_dets, max_entries):
    """Pack the clusters of the gated pairs into block-diagonal assignment problems.

    Clusters (:func:`pair_clusters`) are taken in order and added to the current
    batch while its dense matrix, (Σ tracks) × (Σ detections), stays within
    ``max_entries`` (a larger cluster is a batch of its own).  Whole clusters only,
    so each batch's optimum is the union of its clusters' optima.
    Returns per pair (batch, local track, local detection) and each batch's shape.
    """
    labels = pair_clusters(track_index, det_index, n_tracks, n_dets)
    cluster_t = np.full(n_tracks, -1, np.int64)
    cluster_d = np.full(n_dets, -1, np.int64)
    size_t = np.zeros(n_tracks, np.int64)  # clusters are labelled by a track node
    size_d = np.zeros(n_tracks, np.int64)
    for k in range(track_index.shape[0]):
        if cluster_t[track_index[k]] < 0:
            cluster_t[track_index[k]] = labels[k]
            size_t[labels[k]] += 1
        if cluster_d[det_index[k]] < 0:
            cluster_d[det_index[k]] = labels[k]
            size_d[labels[k]] += 1
    batch_of = np.full(n_tracks, -1, np.int64)
    shapes = [(0, 0)][:0]
    rows, cols = 0, 0
    for c in range(n_tracks):
        if size_t[c] == 0:
            continue
        if not shapes or (rows + size_t[c]) * (cols + size_d[c]) > max_entries:
            if shapes:
                shapes[-1] = (rows, cols)
            shapes.append((0, 0))
            rows, cols = 0, 0
        batch_of[c] = len(shapes) - 1
        rows += size_t[c]
        cols += size_d[c]
    if shapes:
        shapes[-1] = (rows, cols)
    next_t = np.zeros(len(shapes), np.int64)
    next_d = np.zeros(len(shapes), np.int64)
    local_t = np.full(n_tracks, -1, np.int64)
    local_d = np.full(n_dets, -1, np.int64)
    for i in range(n_tracks):
        if cluster_t[i] >= 0:
            b = batch_of[cluster_t[i]]
            local_t[i] = next_t[b]
            next_t[b] += 1
    for j in range(n_dets):
        if cluster_d[j] >= 0:
            b = batch_of[cluster_d[j]]
            local_d[j] = next_d[b]
            next_d[b] += 1
    n = track_index.shape[0]
    batch, lt, ld = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    for k in range(n):
        batch[k] = batch_of[labels[k]]
        lt[k] = local_t[track_index[k]]
        ld[k] = local_d[det_index[k]]
    shape = np.empty((len(shapes), 2), np.int64)
    for b in range(len(shapes)):
        shape[b, 0], shape[b, 1] = shapes[b]
    return batch, lt, ld, shape


@njit(cache=True)
def rival_problems(track_rows, det_rows, cost, capacity, n_det, max_entries, forbidden):
    """Split the gated pairs into lone ones (no rival for their track or detection) and
    dense block-diagonal assignment problems for the rest (:func:`cluster_batches`).

    Returns (lone mask, which detections gated, problems): problem b's cost matrix is
    ``costs[cost_at[b]:cost_at[b + 1]]`` reshaped to ``shape[b]`` (``forbidden`` where
    no pair), its rows are tracks ``track_of[row_at[b]:]``, its columns detections
    ``det_of[col_at[b]:]``.
    """
    n = track_rows.shape[0]
    t_count = np.zeros(capacity, np.int32)
    d_count = np.zeros(n_det, np.int32)
    for k in range(n):
        t_count[track_rows[k]] += 1
        d_count[det_rows[k]] += 1
    lone = np.empty(n, np.bool_)
    for k in range(n):
        lone[k] = t_count[track_rows[k]] == 1 and d_count[det_rows[k]] == 1
    rest = np.flatnonzero(~lone)
    t_local = np.full(capacity, -1, np.int64)  # rival tracks and detections numbered in order of appearance
    d_local = np.full(n_det, -1, np.int64)
    tracks, dets = np.empty(rest.shape[0], np.int64), np.empty(rest.shape[0], np.int64)
    ti, dj = np.empty(rest.shape[0], np.int64), np.empty(rest.shape[0], np.int64)
    nt, nd = 0, 0
    for m in range(rest.shape[0]):
        i, j = track_rows[rest[m]], det_rows[rest[m]]
        if t_local[i] < 0:
            t_local[i], tracks[nt] = nt, i
            nt += 1
        if d_local[j] < 0:
            d_local[j], dets[nd] = nd, j
            nd += 1
        ti[m], dj[m] = t_local[i], d_local[j]
    batch, lt, ld, shape = cluster_batches(ti, dj, nt, nd, max_entries)
    n_batches = shape.shape[0]
    cost_at = np.zeros(n_batches + 1, np.int64)
    row_at = np.zeros(n_batches + 1, np.int64)
    col_at = np.zeros(n_batches + 1, np.int64)
    for b in range(n_batches):
        cost_at[b + 1] = cost_at[b] + shape[b, 0] * shape[b, 1]
        row_at[b + 1] = row_at[b] + shape[b, 0]
        col_at[b + 1] = col_at[b] + shape[b, 1]
    costs = np.full(cost_at[n_batches], forbidden)
    track_of, det_of = np.empty(row_at[n_batches], np.int64), np.empty(col_at[n_batches], np.int64)
    for m in range(rest.shape[0]):
        b = batch[m]
        costs[cost_at[b] + lt[m] * shape[b, 1] + ld[m]] = cost[rest[m]]
        track_of[row_at[b] + lt[m]] = tracks[ti[m]]
        det_of[col_at[b] + ld[m]] = dets[dj[m]]
    return lone, d_count > 0, costs, cost_at, shape, track_of, det_of, row_at, col_at
