"""Track management for one scan as a single numba kernel over the track table.

After association, :func:`manage_scan` does, in this order:

1. **survival**: every track's existence decays with the targets' mean lifetime
   since its last look (:func:`tracking.existence.survive`);
2. **update** each assigned (track, detection): every model with the position
   (and the radial velocity once the track has a velocity, ``hits ≥ 2``), the
   model probabilities and mixture (:func:`tracking.imm.update_track`); the
   existence with the detection's likelihood against the clutter density
   (:func:`tracking.existence.detected`); the class (below); hits, last update,
   contributing sensor;
3. **misses**: a confirmed track that lost the detections in its gate to
   confirmed rival tracks updates its existence with their shared likelihood ratios
   (:mod:`tracking.existence`); one with none lowers its existence only where the
   scan's sensor looked (inside its coverage circle and, for a radar message of one
   sector, within that sector's bearings from the centre: :func:`in_sector`; with its
   P_D); elsewhere the scan says nothing about it;
4. **confirm** tentative tracks whose existence reached the confirmation level;
5. **initiate** a one-point tentative track (velocity 0 ± σ_v, existence ε₀) from
   every detection that was not assigned and may initiate, ids in detection order
   (also one inside another track's gate: in a tight group that is the walker the
   other tracks do not have; a spurious one dies at its next look);
6. **delete** tracks (but those started by this scan) whose existence fell below
   the deletion level, or whose position σ² passed the bound; a tentative track's
   level is at most half its existence at birth, so a track born from a detection
   in sparse clutter (ε₀ below the level) lives until a look has spoken against it.

Class: the sensors' evidence ``p_s ∝ p_s · (f + (1 − N f) ℓ)`` (confusion floor
``f``) times a kinematic likelihood of the highest speed the track has surely had,
``v̂ = max(|v| − 2σ_|v|)`` once it has three detections::

    L_c(v̂) = 1                              for v̂ ≤ v_c   (the class's top speed)
    L_c(v̂) = exp(−½ ((v̂ − v_c) / (v_c/4))²)   beyond

so a car seen at 15 m/s is no longer a person; ``class_prob ∝ p_s · L`` and the
noise density ``q = Σ_c p_c σ²_c`` follows it, capped by what the track's speed
allows: a target at speed v turning at most ω manoeuvres with about ω v, so the
largest model's σ_a is at most ``ω (v + 2σ_v) + a₀`` (a walker at 1.5 m/s is not
given a car's 5 m/s² however unknown its class).  The kinematic factor is not
accumulated scan by scan (successive speeds are not independent evidence).

All of it in one kernel because at tens of tracks a step the numpy calls'
fixed costs, not the arithmetic, were the tracker's time.  The table and the scan
come as structs of arrays (:class:`~tracking.table.TrackColumns`,
:class:`ScanColumns`), the numbers as :class:`ManageParams`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from tracking.existence import detected, initial, likelihood_ratio, missed, survive
from tracking.imm import combine, update_track

__all__ = ["manage_scan", "release_row", "in_sector", "ScanColumns", "GatedPairs", "ManageParams", "UNKNOWN_PD"]

_TENTATIVE, _CONFIRMED = 0, 1
UNKNOWN_PD = 0.5  # a sensor that declares no detection probability: a hit still counts, half as much


class ScanColumns(NamedTuple):
    """One scan as the kernel reads it (see :class:`sensors.batch.Scan`)."""

    z: np.ndarray  # (n, 2)
    R: np.ndarray  # (n, 2, 2)
    radial: np.ndarray  # (n,) NaN when absent
    radial_sigma: np.ndarray
    los: np.ndarray  # (n, 2)
    likelihood: np.ndarray  # (n, 5)
    can_initiate: np.ndarray
    sensor: int
    coverage: np.ndarray  # (centre e, centre n, radius, sector start, sector width); radius 0: the sensor says
    # nothing of absent targets; the sector (rad, clockwise from the frame's north) width 2π: the whole circle
    pd: float
    clutter_density: float  # per m²; 0: not declared


class GatedPairs(NamedTuple):
    """Every (track row, detection row) pair inside the gate, with ln N(z; ẑ, S) of the pair."""

    track: np.ndarray
    det: np.ndarray
    loglik: np.ndarray


class ManageParams(NamedTuple):
    """The tracker configuration's numbers the kernel reads."""

    class_floor: float
    class_q: np.ndarray  # σ_a² per class
    top_speed: np.ndarray  # per class; inf: no limit
    max_variance: float
    initial_speed_variance: float
    gate_probability: float
    birth_density: float  # per m²
    default_clutter_density: float
    lifetime_s: float
    confirm: float
    delete: float
    share_within_s: float
    turn_rate: float  # rad/s: the strongest manoeuvre is about speed × turn rate, plus …
    accel_floor: float  # … this (m/s²) for starts and stops
    manoeuvre_scale: float  # the largest model's σ_a as a multiple of the class level (1 without the IMM)


@njit(cache=True)
def _class_update(tab, i, likelihood, j, par, fresh):
    """Sensor evidence, then the kinematic factor, then q (see the module docstring)."""
    ps, pc = tab.class_sensor, tab.class_prob
    n = ps.shape[1]
    floor = par.class_floor
    total = 0.0
    for c in range(n):
        prior = 1.0 if fresh else ps[i, c]
        ps[i, c] = prior * (floor + (1.0 - n * floor) * likelihood[j, c])
        total += ps[i, c]
    for c in range(n):
        ps[i, c] /= total
    speed_high = np.inf  # the fastest the track may be going now (speed + 2σ), once it has a velocity
    if tab.hits[i] >= 3:
        vx, vy = tab.x[i, 2], tab.x[i, 3]
        speed = np.sqrt(vx * vx + vy * vy)
        sigma = np.sqrt(max(0.5 * (tab.P[i, 2, 2] + tab.P[i, 3, 3]), 0.0))
        if speed > 0.0:
            var = (vx * vx * tab.P[i, 2, 2] + 2.0 * vx * vy * tab.P[i, 2, 3] + vy * vy * tab.P[i, 3, 3]) / (speed * speed)
            sigma = np.sqrt(max(var, 0.0))
            tab.top_speed[i] = max(tab.top_speed[i], speed - 2.0 * sigma)
        speed_high = speed + 2.0 * sigma
    v = tab.top_speed[i]
    total = 0.0
    for c in range(n):
        vc = par.top_speed[c]
        k = 1.0
        if v > vc:
            s = (v - vc) / (0.25 * vc)
            k = np.exp(-0.5 * s * s)
        pc[i, c] = ps[i, c] * max(k, 1e-12)
        total += pc[i, c]
    tab.q[i] = 0.0
    for c in range(n):
        pc[i, c] /= total
        tab.q[i] += pc[i, c] * par.class_q[c]
    cap = (par.turn_rate * speed_high + par.accel_floor) / par.manoeuvre_scale
    tab.q[i] = min(tab.q[i], cap * cap)


@njit(cache=True)
def in_sector(d_east, d_north, start_rad, width_rad):
    """Whether the bearing of (d_east, d_north) from the coverage centre, clockwise from north, lies
    in the sector clockwise from ``start_rad`` through ``width_rad`` (ends included, wrapping through
    north): ``(atan2(Δe, Δn) − start) mod 2π ≤ width``.  Width 2π is the whole circle, without trigonometry."""
    if width_rad >= 2.0 * np.pi:
        return True
    offset = np.arctan2(d_east, d_north) - start_rad
    offset -= 2.0 * np.pi * np.floor(offset / (2.0 * np.pi))
    return offset <= width_rad


@njit(cache=True)
def _mark_sensor(sensor_mask, i, sensor):
    sensor_mask[i, sensor // 64] |= np.uint64(1) << np.uint64(sensor % 64)


@njit(cache=True)
def _start_track(tab, scan, j, mu0, t, track_id, existence, par):
    tab.n_free[0] -= 1
    i = tab.free[tab.n_free[0]]
    tab.high[0] = max(tab.high[0], i + 1)
    tab.alive[i] = True
    tab.track_id[i] = track_id
    for m in range(mu0.shape[0]):
        tab.xm[i, m] = 0.0
        tab.xm[i, m, 0], tab.xm[i, m, 1] = scan.z[j, 0], scan.z[j, 1]
        tab.Pm[i, m] = 0.0
        tab.Pm[i, m, :2, :2] = scan.R[j]
        tab.Pm[i, m, 2, 2] = tab.Pm[i, m, 3, 3] = par.initial_speed_variance
    tab.mu[i] = mu0
    combine(tab.xm[i], tab.Pm[i], tab.mu[i], tab.x[i], tab.P[i])
    tab.t_state[i] = tab.t_update[i] = tab.t_exist[i] = tab.first_seen[i] = t
    tab.existence[i] = tab.birth_existence[i] = existence
    tab.status[i] = _TENTATIVE
    tab.hits[i] = 1
    tab.top_speed[i] = 0.0
    tab.merge_with[i] = -1
    _class_update(tab, i, scan.likelihood, j, par, True)
    tab.sensor_mask[i] = 0
    _mark_sensor(tab.sensor_mask, i, scan.sensor)


@njit(cache=True)
def manage_scan(tab, scan, gate, tracks, dets, t, next_id, mu0, par):
    """One scan's management in place; returns (confirmed rows, deleted ids, next track id, detections
    that found no free row).  ``gate`` holds every gated pair (:class:`GatedPairs`), ``tracks``,
    ``dets`` the assigned ones.

    ``mu0`` the model probabilities of a new track.  ``tab.high[0]`` (rows from
    there up are free) is kept up to date.
    """
    high = tab.high[0]
    clutter = scan.clutter_density if scan.clutter_density > 0.0 else par.default_clutter_density
    pd_hit = scan.pd if scan.pd > 0.0 else UNKNOWN_PD
    pg = par.gate_probability
    for i in range(high):
        if tab.alive[i]:
            tab.existence[i] = survive(tab.existence[i], t - tab.t_exist[i], par.lifetime_s)
            tab.t_exist[i] = t

    loglik = np.empty(mu0.shape[0])
    updated = np.zeros(high, np.bool_)
    for k in range(tracks.shape[0]):
        i, j = tracks[k], dets[k]
        rv = scan.radial[j] if tab.hits[i] >= 2 else np.nan  # a one-point track's velocity is not yet worth it
        ll = update_track(tab.x, tab.P, tab.xm, tab.Pm, tab.mu, i, scan.z[j], scan.R[j], rv, scan.radial_sigma[j],
                          scan.los[j, 0], scan.los[j, 1], loglik)
        tab.existence[i] = detected(tab.existence[i], pd_hit, pg, likelihood_ratio(ll, clutter, pg))
        tab.hits[i] += 1
        _class_update(tab, i, scan.likelihood, j, par, False)
        tab.t_update[i] = t
        _mark_sensor(tab.sensor_mask, i, scan.sensor)
        updated[i] = True

    # Σ ℓ/λ over gated detections that confirmed rivals took, each over the number of tracks gating it,
    # for a confirmed track detected within share_within_s (one in a tight group, not a vanished target's,
    # nor a new track beside an established one)
    taken_by_confirmed = np.zeros(scan.z.shape[0], np.bool_)
    for k in range(tracks.shape[0]):
        taken_by_confirmed[dets[k]] = tab.status[tracks[k]] == _CONFIRMED
    rivals = np.zeros(scan.z.shape[0])
    for k in range(gate.track.shape[0]):
        rivals[gate.det[k]] += 1.0
    shared = np.zeros(high)
    for k in range(gate.track.shape[0]):
        i, j = gate.track[k], gate.det[k]
        if (not updated[i] and tab.status[i] == _CONFIRMED and taken_by_confirmed[j]
                and t - tab.t_update[i] <= par.share_within_s):
            shared[i] += likelihood_ratio(gate.loglik[k], clutter, pg) / rivals[j]
    ce, cn, radius = scan.coverage[0], scan.coverage[1], scan.coverage[2]
    start, width = scan.coverage[3], scan.coverage[4]
    for i in range(high):
        if not tab.alive[i] or updated[i]:
            continue
        de, dn = tab.x[i, 0] - ce, tab.x[i, 1] - cn
        if shared[i] > 0.0:
            tab.existence[i] = detected(tab.existence[i], pd_hit, pg, shared[i])
        elif (radius > 0.0 and scan.pd > 0.0 and de ** 2 + dn ** 2 <= radius * radius
              and in_sector(de, dn, start, width)):
            tab.existence[i] = missed(tab.existence[i], scan.pd, pg)

    confirmed = [0][:0]
    for i in range(high):
        if tab.alive[i] and tab.status[i] == _TENTATIVE and tab.existence[i] >= par.confirm:
            tab.status[i] = _CONFIRMED
            confirmed.append(i)

    taken = np.zeros(scan.z.shape[0], np.bool_)
    taken[dets] = True
    existence0 = initial(par.birth_density, clutter)
    dropped = 0
    for j in range(scan.z.shape[0]):
        if taken[j] or not scan.can_initiate[j]:
            continue
        if tab.n_free[0] == 0:
            dropped += 1
            continue
        _start_track(tab, scan, j, mu0, t, next_id, existence0, par)
        next_id += 1

    deleted_rows = [0][:0]
    for i in range(tab.high[0]):
        if not tab.alive[i] or tab.first_seen[i] == t:  # a track started now has had no look yet
            continue
        limit = par.delete if tab.status[i] == _CONFIRMED else min(par.delete, 0.5 * tab.birth_existence[i])
        if tab.existence[i] < limit or max(tab.P[i, 0, 0], tab.P[i, 1, 1]) > par.max_variance:
            deleted_rows.append(i)
    deleted_ids = np.empty(len(deleted_rows), np.int64)
    for k in range(len(deleted_rows) - 1, -1, -1):  # pushed in reverse: the lowest row is reused first
        deleted_ids[k] = release_row(tab, deleted_rows[k])
    return np.array(confirmed, np.int64), deleted_ids, next_id, dropped


@njit(cache=True)
def release_row(tab, i):
    """Free row ``i``; returns the id it held."""
    track_id = tab.track_id[i]
    tab.alive[i] = False
    tab.track_id[i] = -1
    tab.free[tab.n_free[0]] = i
    tab.n_free[0] += 1
    while tab.high[0] > 0 and not tab.alive[tab.high[0] - 1]:
        tab.high[0] -= 1
    return track_id
