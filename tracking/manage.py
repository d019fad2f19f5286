"""Track management for one scan as a single numba kernel over the track table.

After association, :func:`manage_scan` does, in this order:

1. **update** each assigned (track, detection): every model with the position
   (and the radial velocity once the track has a velocity, ``hits ≥ 2``), the
   model probabilities and mixture (:func:`tracking.imm.update_track`); the class
   posterior ``p ∝ p · (f + (1 − N f) ℓ)`` with confusion floor ``f``; the noise
   density ``q = Σ_c p_c σ²_c``; hits, last update, contributing sensor;
2. **looks**: a tentative track counts a look when it was updated or lay inside
   the scan's coverage circle, so a miss only counts where a sensor looked;
3. **confirm** tentative tracks with ``hits ≥ confirm_hits``;
4. **initiate** a one-point tentative track (velocity 0 ± σ_v) from every
   detection that fell in no gate and may initiate, ids in detection order;
5. **delete** tentative tracks silent for ``delete_tentative_after_s`` or that
   can no longer reach ``confirm_hits`` within ``confirm_window`` looks, confirmed
   ones not *held* for ``delete_after_s``, and any whose position σ² passes the
   bound.  A confirmed track is held by an update that comes within
   ``reacquire_gap_s`` of the one before: a lone hit after a long coast — often
   clutter caught by the grown gate — does not keep a vanished target's track alive.

All of it in one kernel because at tens of tracks a step the numpy calls'
fixed costs, not the arithmetic, were the tracker's time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracking.imm import combine, update_track

__all__ = ["manage_scan", "LIMITS"]

#: order of the ``limits`` array: the tracker config's numbers the kernel reads
LIMITS = ("class_confusion_floor", "confirm_hits", "confirm_window", "delete_tentative_after_s", "delete_after_s",
          "max_position_variance", "initial_speed_variance", "reacquire_gap_s")

_TENTATIVE, _CONFIRMED = 0, 1


@njit(cache=True)
def _class_update(class_prob, q, i, likelihood, j, floor, class_q, fresh):
    n = class_prob.shape[1]
    total = 0.0
    for c in range(n):
        prior = 1.0 if fresh else class_prob[i, c]
        class_prob[i, c] = prior * (floor + (1.0 - n * floor) * likelihood[j, c])
        total += class_prob[i, c]
    q[i] = 0.0
    for c in range(n):
        class_prob[i, c] /= total
        q[i] += class_prob[i, c] * class_q[c]


@njit(cache=True)
def _mark_sensor(sensor_mask, i, sensor):
    sensor_mask[i, sensor // 64] |= np.uint64(1) << np.uint64(sensor % 64)


@njit(cache=True)
def manage_scan(alive, track_id, x, P, xm, Pm, mu, mu0, t_state, t_update, t_held, first_seen, status, hits, looks,
                class_prob, q, sensor_mask, free, n_free, high,
                z, R, radial, radial_sigma, los, likelihood, can_initiate, sensor, coverage,
                tracks, dets, gated, t, next_id, class_q, limits):
    """One scan's management in place; returns (confirmed rows, deleted ids, next track id).

    ``coverage`` = (centre e, centre n, radius; radius 0 = no coverage known);
    ``mu0`` the model probabilities of a new track; ``limits`` as :data:`LIMITS`.
    The caller reserves a free row per detection beforehand.  ``high[0]`` (rows from
    there up are free) is kept up to date.
    """
    floor, confirm_hits, confirm_window = limits[0], limits[1], limits[2]
    delete_tentative_after, delete_after, max_var, speed_var = limits[3], limits[4], limits[5], limits[6]
    reacquire_gap = limits[7]
    M = mu0.shape[0]
    loglik = np.empty(M)
    updated = np.zeros(high[0], np.bool_)
    for k in range(tracks.shape[0]):
        i, j = tracks[k], dets[k]
        rv = radial[j] if hits[i] >= 2 else np.nan  # a one-point track's velocity is not yet worth a radial update
        update_track(x, P, xm, Pm, mu, i, z[j], R[j], rv, radial_sigma[j], los[j, 0], los[j, 1], loglik)
        _class_update(class_prob, q, i, likelihood, j, floor, class_q, False)
        hits[i] += 1
        if t - t_update[i] <= reacquire_gap:  # a lone hit after a long silence does not hold the track yet
            t_held[i] = t
        t_update[i] = t
        _mark_sensor(sensor_mask, i, sensor)
        updated[i] = True

    confirmed = [0][:0]
    ce, cn, radius = coverage[0], coverage[1], coverage[2]
    for i in range(high[0]):
        if not alive[i] or status[i] != _TENTATIVE:
            continue
        if updated[i] or (radius > 0.0 and (x[i, 0] - ce) ** 2 + (x[i, 1] - cn) ** 2 <= radius * radius):
            looks[i] += 1
        if hits[i] >= confirm_hits:
            status[i] = _CONFIRMED
            t_held[i] = t_update[i]
            confirmed.append(i)

    taken = np.zeros(z.shape[0], np.bool_)
    taken[dets] = True
    for j in range(z.shape[0]):
        if taken[j] or gated[j] or not can_initiate[j]:
            continue
        n_free[0] -= 1
        i = free[n_free[0]]
        high[0] = max(high[0], i + 1)
        alive[i] = True
        track_id[i] = next_id
        next_id += 1
        for m in range(M):
            xm[i, m] = 0.0
            xm[i, m, 0], xm[i, m, 1] = z[j, 0], z[j, 1]
            Pm[i, m] = 0.0
            Pm[i, m, :2, :2] = R[j]
            Pm[i, m, 2, 2] = Pm[i, m, 3, 3] = speed_var
        mu[i] = mu0
        combine(xm[i], Pm[i], mu[i], x[i], P[i])
        t_state[i] = t_update[i] = t_held[i] = first_seen[i] = t
        status[i] = _TENTATIVE
        hits[i] = looks[i] = 1
        _class_update(class_prob, q, i, likelihood, j, floor, class_q, True)
        sensor_mask[i] = 0
        _mark_sensor(sensor_mask, i, sensor)

    deleted_rows = [0][:0]
    for i in range(high[0]):
        if not alive[i]:
            continue
        if status[i] == _TENTATIVE:
            dead = t - t_update[i] > delete_tentative_after or (looks[i] >= confirm_window and hits[i] < confirm_hits)
        else:
            dead = t - t_held[i] > delete_after
        if dead or max(P[i, 0, 0], P[i, 1, 1]) > max_var:
            deleted_rows.append(i)
    deleted_ids = np.empty(len(deleted_rows), np.int64)
    for k in range(len(deleted_rows) - 1, -1, -1):  # pushed in reverse: the lowest row is reused first
        i = deleted_rows[k]
        deleted_ids[k] = track_id[i]
        alive[i] = False
        track_id[i] = -1
        free[n_free[0]] = i
        n_free[0] += 1
    while high[0] > 0 and not alive[high[0] - 1]:
        high[0] -= 1
    return np.array(confirmed, np.int64), deleted_ids, next_id
