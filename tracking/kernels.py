"""Numba kernels over the track table: predict, gate, update.

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

Kernels take and return arrays; they never raise, log or read globals.  None
uses ``fastmath``: NaN must stay NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["predict", "gate_pairs", "update_position", "update_radial", "transition", "process_noise", "pair_clusters"]


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
def predict(x, P, t_state, alive, q, t):
    """Predict every alive track whose state is older than ``t`` to time ``t``, in place.

    F P Fᵀ written out in 2×2 blocks, P = [[A, B], [Bᵀ, C]] (position, velocity):
    A ← A + Δt (B + Bᵀ) + Δt² C,  B ← B + Δt C,  C unchanged; then + Q.  No temporaries:
    with ~100 tracks a step the allocations of the matrix form cost more than the arithmetic.
    """
    for i in range(x.shape[0]):
        if not alive[i]:
            continue
        dt = t - t_state[i]
        if dt <= 0.0:
            continue
        x[i, 0] += dt * x[i, 2]
        x[i, 1] += dt * x[i, 3]
        p = P[i]
        for r in range(2):  # A first: it reads the old B
            for c in range(2):
                p[r, c] += dt * (p[r + 2, c] + p[r, c + 2]) + dt * dt * p[r + 2, c + 2]
        for r in range(2):
            for c in range(2):
                p[r, c + 2] += dt * p[r + 2, c + 2]
                p[r + 2, c] += dt * p[r + 2, c + 2]
        a, b, v = q[i] * dt**3 / 3.0, q[i] * dt**2 / 2.0, q[i] * dt
        p[0, 0] += a
        p[1, 1] += a
        p[0, 2] += b
        p[2, 0] += b
        p[1, 3] += b
        p[3, 1] += b
        p[2, 2] += v
        p[3, 3] += v
        t_state[i] = t


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
def gate_pairs(x, P, alive, young, dt_young, max_speed, z, R, gate, cell_m):
    """All (track, detection) pairs inside the chi-square gate, via a uniform grid.

    Detections are bucketed in square cells of ``cell_m``; each track visits only
    the cells within its gate radius ``√(γ·(tr P_pos + max tr R))`` (an upper bound
    of the gate ellipse's semi-axis), so the cost grows with the number of nearby
    pairs, not tracks × detections.  A pair is kept when ``d² = νᵀ S⁻¹ ν ≤ γ`` with
    ``ν = z − H x``, ``S = P_pos + R``.  Tracks flagged ``young`` (one detection so
    far) must also be reachable at ``max_speed`` within ``dt_young``.
    Returns (track rows, detection rows, d², ln|S|).
    """
    n_det = z.shape[0]
    big = np.int64(1) << 31
    keys = np.empty(n_det, np.int64)
    r_max = 0.0
    for j in range(n_det):
        keys[j] = _cell(z[j, 0], cell_m) * big + _cell(z[j, 1], cell_m)
        r_max = max(r_max, R[j, 0, 0] + R[j, 1, 1])
    order = np.argsort(keys)
    sorted_keys = keys[order]
    out_t, out_d, out_d2, out_ld = [0][:0], [0][:0], [0.0][:0], [0.0][:0]
    for i in range(x.shape[0]):
        if not alive[i]:
            continue
        radius = np.sqrt(gate * (P[i, 0, 0] + P[i, 1, 1] + r_max))
        cx0, cx1 = _cell(x[i, 0] - radius, cell_m), _cell(x[i, 0] + radius, cell_m)
        cy0, cy1 = _cell(x[i, 1] - radius, cell_m), _cell(x[i, 1] + radius, cell_m)
        everything = (cx1 - cx0 + 1) * (cy1 - cy0 + 1) > n_det + 16
        if everything:  # a gate wider than the grid is worth: look at every detection once
            cx0, cx1, cy0, cy1 = 0, 0, 0, 0
        for cx in range(cx0, cx1 + 1):
            for cy in range(cy0, cy1 + 1):
                if everything:
                    lo, hi = 0, n_det
                else:
                    key = cx * big + cy
                    lo = np.searchsorted(sorted_keys, key)
                    hi = np.searchsorted(sorted_keys, key, side="right")
                for idx in range(lo, hi):
                    j = order[idx]
                    d2, logdet = _mahalanobis(x, P, i, z, R, j)
                    if d2 < 0.0 or d2 > gate:
                        continue
                    if young[i]:
                        reach = max_speed * dt_young[i] + 3.0 * np.sqrt(R[j, 0, 0] + R[j, 1, 1])
                        if (z[j, 0] - x[i, 0]) ** 2 + (z[j, 1] - x[i, 1]) ** 2 > reach * reach:
                            continue
                    out_t.append(i)
                    out_d.append(j)
                    out_d2.append(d2)
                    out_ld.append(logdet)
    return np.array(out_t, np.int64), np.array(out_d, np.int64), np.array(out_d2), np.array(out_ld)


@njit(cache=True)
def update_position(x, P, rows, z, R):
    """Kalman update of tracks ``rows[k]`` with position measurements ``z[k]``, ``R[k]``, in place."""
    I = np.eye(4)
    for k in range(rows.shape[0]):
        i = rows[k]
        H = np.zeros((2, 4))
        H[0, 0] = 1.0
        H[1, 1] = 1.0
        S = H @ P[i] @ H.T + R[k]
        K = P[i] @ H.T @ np.linalg.inv(S)
        x[i] = x[i] + K @ (z[k] - H @ x[i])
        A = I - K @ H
        P[i] = A @ P[i] @ A.T + K @ R[k] @ K.T


@njit(cache=True)
def update_radial(x, P, rows, radial, sigma, los):
    """Scalar update with radial velocities ``ṙ = uᵀv`` (H = [0, 0, uₑ, uₙ]); NaN entries are skipped."""
    I = np.eye(4)
    for k in range(rows.shape[0]):
        if not np.isfinite(radial[k]):
            continue
        i = rows[k]
        H = np.zeros((1, 4))
        H[0, 2] = los[k, 0]
        H[0, 3] = los[k, 1]
        S = (H @ P[i] @ H.T)[0, 0] + sigma[k] ** 2
        K = (P[i] @ H.T)[:, 0] / S
        innovation = radial[k] - (H @ x[i])[0]
        x[i] = x[i] + K * innovation
        A = I - np.outer(K, H[0])
        P[i] = A @ P[i] @ A.T + np.outer(K, K) * sigma[k] ** 2


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
