"""Interacting multiple models over the track table: per-model states, mixing, fusion.

Each track carries ``M`` nearly-constant-velocity filters that differ only in
their process noise, ``q_m = q · scale_m`` (by default quiet, moderate and manoeuvring,
the most agile last), with model probabilities ``μ``.  Between models a continuous-time Markov chain
with mean sojourn ``τ_m`` gives, over a step ``Δt``,

    Π_mm = exp(−Δt/τ_m),   Π_mn = (1 − Π_mm)/(M − 1)   (n ≠ m)

Predict (Blom & Bar-Shalom 1988; Bar-Shalom, Li, Kirubarajan §11.6.6):

    c̄_n = Σ_m Π_mn μ_m                     predicted model probabilities
    ω_m|n = Π_mn μ_m / c̄_n                 mixing weights
    x⁰_n = Σ_m ω_m|n x_m,  P⁰_n = Σ_m ω_m|n (P_m + (x_m − x⁰_n)(x_m − x⁰_n)ᵀ)
    x_n, P_n ← model n's prediction of (x⁰_n, P⁰_n);   μ ← c̄

Update: every model is updated with the detection, with likelihood Λ_n, and
μ_n ← μ_n Λ_n / Σ_k μ_k Λ_k.  The reported state is the moment-matched mixture
``x = Σ μ_n x_n``, ``P = Σ μ_n (P_n + (x_n − x)(x_n − x)ᵀ)``, which is what gating,
snapshots and the geofence read.  With ``M = 1`` all of this is the plain Kalman
filter (mixing is the identity and the mixture is the one model).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracking.kernels import predict_row, update_position_row, update_radial_row

__all__ = ["predict_tracks", "update_track", "combine", "mode_transition", "pair_log_likelihood"]


@njit(cache=True)
def mode_transition(dt, sojourn, Pi):
    """Π(Δt) of the model chain into ``Pi`` (M×M): row m = from model m."""
    M = sojourn.shape[0]
    for m in range(M):
        stay = np.exp(-dt / sojourn[m])
        for n in range(M):
            Pi[m, n] = stay if m == n else (1.0 - stay) / (M - 1)


@njit(cache=True)
def _mix(xm, Pm, mu, Pi, x0, P0, cbar, omega):
    """Mixed initial conditions x⁰, P⁰ (into x0, P0), c̄ (into cbar) and ω (scratch) for one track."""
    M = mu.shape[0]
    for n in range(M):
        c = 0.0
        for m in range(M):
            c += Pi[m, n] * mu[m]
        cbar[n] = c
        for m in range(M):
            omega[m] = Pi[m, n] * mu[m] / c
        for a in range(4):
            v = 0.0
            for m in range(M):
                v += omega[m] * xm[m, a]
            x0[n, a] = v
        for a in range(4):
            for b in range(4):
                v = 0.0
                for m in range(M):
                    v += omega[m] * (Pm[m, a, b] + (xm[m, a] - x0[n, a]) * (xm[m, b] - x0[n, b]))
                P0[n, a, b] = v


@njit(cache=True)
def combine(xm, Pm, mu, x, P):
    """The moment-matched mixture of one track's models into ``x``, ``P``."""
    M = mu.shape[0]
    x[:] = 0.0
    for m in range(M):
        for a in range(4):
            x[a] += mu[m] * xm[m, a]
    P[:] = 0.0
    for m in range(M):
        for a in range(4):
            da = xm[m, a] - x[a]
            for b in range(4):
                P[a, b] += mu[m] * (Pm[m, a, b] + da * (xm[m, b] - x[b]))


@njit(cache=True)
def predict_tracks(x, P, xm, Pm, mu, t_state, alive, q, scales, sojourn, t, quiet_q=0.0):
    """Predict every alive track older than ``t`` to ``t``: mix, predict each model, combine; in place."""
    M = scales.shape[0]
    Pi = np.empty((M, M))
    x0 = np.empty((M, 4))
    P0 = np.empty((M, 4, 4))
    cbar, omega = np.empty(M), np.empty(M)
    last_dt = -1.0
    for i in range(x.shape[0]):
        if not alive[i] or t <= t_state[i]:
            continue
        dt = t - t_state[i]
        if M > 1:
            if dt != last_dt:  # most tracks share the step since the previous scan
                mode_transition(dt, sojourn, Pi)
                last_dt = dt
            _mix(xm[i], Pm[i], mu[i], Pi, x0, P0, cbar, omega)
            xm[i] = x0
            Pm[i] = P0
            mu[i] = cbar
        for m in range(M):
            predict_row(xm[i, m], Pm[i, m], dt, q[i] * scales[m] + (quiet_q if m == 0 else 0.0))
        combine(xm[i], Pm[i], mu[i], x[i], P[i])
        t_state[i] = t


@njit(cache=True)
def update_track(x, P, xm, Pm, mu, i, z, R, radial, radial_sigma, u0, u1, loglik):
    """Update every model of track ``i`` with a position (and a radial velocity unless NaN), then μ and the mixture.

    ``loglik`` is scratch of length M.  Model probabilities are updated in the log
    domain (shifted by the largest term), so a far detection cannot underflow them all.
    Returns the position's log-likelihood under the predicted mixture,
    ln Σ_m μ_m N(z; ẑ_m, S_m), which track existence weighs against clutter.
    """
    M = mu.shape[1]
    top_pos = -np.inf
    position_ll = np.empty(M)
    for m in range(M):
        position_ll[m] = update_position_row(xm[i, m], Pm[i, m], z, R)
        top_pos = max(top_pos, position_ll[m])
        loglik[m] = position_ll[m]
        if np.isfinite(radial):
            loglik[m] += update_radial_row(xm[i, m], Pm[i, m], radial, radial_sigma, u0, u1)
    mixture = 0.0
    for m in range(M):
        mixture += mu[i, m] * np.exp(position_ll[m] - top_pos)
    if M > 1:
        top = loglik.max()
        total = 0.0
        for m in range(M):
            mu[i, m] *= np.exp(loglik[m] - top)
            total += mu[i, m]
        for m in range(M):
            mu[i, m] /= total
    combine(xm[i], Pm[i], mu[i], x[i], P[i])
    return top_pos + np.log(mixture)


@njit(cache=True)
def pair_log_likelihood(track_rows, det_rows, xm, Pm, mu, z, R):
    """ln Σ_m μ_m N(z_j; H x_m, H P_m Hᵀ + R_j) for each gated (track, detection) pair: the
    position likelihood under the track's model mixture, the association cost GNN minimises
    (negated).  Gating uses the most agile model (every model's gate lies inside it), so a
    turn the quiet model did not predict still finds its plot, while the cost prefers the
    plot the likelier model expects.
    """
    n, M = track_rows.shape[0], mu.shape[1]
    out = np.empty(n)
    for k in range(n):
        i, j = track_rows[k], det_rows[k]
        top, terms = -np.inf, np.empty(M)
        for m in range(M):
            s00 = Pm[i, m, 0, 0] + R[j, 0, 0]
            s01 = Pm[i, m, 0, 1] + R[j, 0, 1]
            s11 = Pm[i, m, 1, 1] + R[j, 1, 1]
            det = s00 * s11 - s01 * s01
            v0, v1 = z[j, 0] - xm[i, m, 0], z[j, 1] - xm[i, m, 1]
            d2 = (s11 * v0 * v0 - 2.0 * s01 * v0 * v1 + s00 * v1 * v1) / det
            terms[m] = np.log(max(mu[i, m], 1e-300)) - 0.5 * (d2 + np.log(det)) - np.log(2.0 * np.pi)
            top = max(top, terms[m])
        total = 0.0
        for m in range(M):
            total += np.exp(terms[m] - top)
        out[k] = top + np.log(total)
    return out
