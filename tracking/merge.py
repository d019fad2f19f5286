"""Duplicate tracks: two confirmed tracks that stay statistically one target are merged.

A track seduced onto a neighbour's detections, or a new track started beside a
coasting one, follows the same target as another track.  Two confirmed tracks
``a`` (older: lower id) and ``b`` are taken for the same target when the
difference of their states passes a chi-square test with S = P_a + P_b (the
errors of two tracks fed by the same detections are correlated, so this S is
conservative)::

    d² = (x_a − x_b)ᵀ (P_a + P_b)⁻¹ (x_a − x_b) ≤ χ²₄(p_merge)

at every check for ``merge_after_s`` of data time, while one of the two has had no
detection for that long: the other one has its detections (two tracks that both keep
being detected are two targets close together, as in a group, and stay apart; where a
sensor declares its coverage, the silent one of a duplicate pair loses existence and
goes by itself).  Then ``b`` is deleted and its
id reported with ``a``'s, so that what ``b`` had raised is not raised again under
``a`` (the geofence moves ``b``'s per-track state to ``a``).  The older id
survives because consumers have seen it longer.  Candidate pairs come from the
tracker's gating grid, with the tracks' own positions as the 'detections'.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracking.manage import release_row

__all__ = ["merge_duplicates"]


@njit(cache=True)
def _difference_d2(x, P, a, b):
    """(x_a − x_b)ᵀ (P_a + P_b)⁻¹ (x_a − x_b) over the 4-d state; inf when singular."""
    S = P[a] + P[b]
    d = x[a] - x[b]
    try:
        return float(d @ np.linalg.solve(S, d))
    except Exception:  # noqa: BLE001 (numba raises a generic error for a singular matrix)
        return np.inf


@njit(cache=True)
def merge_duplicates(tab, pair_a, pair_b, limit, t, after_s):
    """Advance each confirmed track's 'same as' clock over candidate pairs (rows ``pair_a[k]``,
    ``pair_b[k]``) and merge the pairs that are due; returns (absorbed ids, survivor ids), the
    youngest absorbed first (so that a chain b → a → c resolves in order).

    A younger track keeps its candidate (the older track's id in ``merge_with``, since
    ``merge_since``) while the test passes at every check; a check without it restarts the clock.
    The survivor keeps its state and inherits the absorbed track's existence (the larger) and
    contributing sensors; the absorbed row is freed.
    """
    high = tab.high[0]
    best = np.full(high, np.inf)
    partner = np.full(high, -1, np.int64)
    for k in range(pair_a.shape[0]):
        a, b = pair_a[k], pair_b[k]
        if a == b or tab.status[a] != 1 or tab.status[b] != 1:
            continue
        if tab.track_id[a] > tab.track_id[b]:
            a, b = b, a  # a: the older track
        if t - tab.t_update[a] < after_s and t - tab.t_update[b] < after_s:
            continue  # both detected lately: two targets close together, as in a group
        d2 = _difference_d2(tab.x, tab.P, a, b)
        if d2 <= limit and d2 < best[b]:
            best[b] = d2
            partner[b] = a
    due = [0][:0]
    for b in range(high):
        if not tab.alive[b] or tab.status[b] != 1:
            continue
        if partner[b] < 0:
            tab.merge_with[b] = -1
        elif tab.merge_with[b] != tab.track_id[partner[b]]:
            tab.merge_with[b] = tab.track_id[partner[b]]
            tab.merge_since[b] = t
        elif t - tab.merge_since[b] >= after_s:
            due.append(b)
    rows = np.array(due, np.int64)
    rows = rows[np.argsort(-tab.track_id[rows])]  # youngest first
    absorbed_ids = tab.track_id[rows].copy()
    survivor_ids = np.empty(rows.shape[0], np.int64)
    for k in range(rows.shape[0]):
        b, a = rows[k], partner[rows[k]]
        survivor_ids[k] = tab.track_id[a]
        tab.existence[a] = max(tab.existence[a], tab.existence[b])
        for w in range(tab.sensor_mask.shape[1]):
            tab.sensor_mask[a, w] |= tab.sensor_mask[b, w]
    for k in range(rows.shape[0]):
        release_row(tab, rows[k])
    return absorbed_ids, survivor_ids
