"""Global nearest neighbour association per scan.

The gated pairs form a bipartite graph (clusters by union-find,
:func:`~tracking.kernels.pair_clusters`); each connected cluster is solved on its
own with ``scipy.optimize.linear_sum_assignment``, minimising Σ (d² + ln|S|), the
negative log-likelihood of the assignment up to constants.  Pairs outside the gate
cost ``_FORBIDDEN``, so the solver first maximises the number of gated
assignments, then their likelihood.  A lone pair (one track, one detection, no
rivals), by far the most common case, is assigned without the solver.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from tracking.kernels import pair_clusters

__all__ = ["assign"]

_FORBIDDEN = 1e9


def assign(track_rows: np.ndarray, det_rows: np.ndarray, cost: np.ndarray, n_det: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (track row, detection row) of the GNN assignment; each used at most once."""
    if track_rows.size == 0:
        return track_rows, det_rows
    tracks, t_index = np.unique(track_rows, return_inverse=True)
    t_count = np.bincount(t_index)
    d_count = np.bincount(det_rows, minlength=n_det)
    lone = (t_count[t_index] == 1) & (d_count[det_rows] == 1)
    out_t, out_d = [track_rows[lone]], [det_rows[lone]]
    rest = ~lone
    if rest.any():
        ti, dj, c = t_index[rest], det_rows[rest], cost[rest]
        nt = tracks.size
        cluster = pair_clusters(ti, dj, nt, n_det)
        order = np.argsort(cluster, kind="stable")
        bounds = np.flatnonzero(np.diff(cluster[order])) + 1
        for members in np.split(order, bounds):
            rows_t, inv_t = np.unique(ti[members], return_inverse=True)
            rows_d, inv_d = np.unique(dj[members], return_inverse=True)
            matrix = np.full((rows_t.size, rows_d.size), _FORBIDDEN)
            matrix[inv_t, inv_d] = c[members]
            r, k = linear_sum_assignment(matrix)
            ok = matrix[r, k] < _FORBIDDEN
            out_t.append(tracks[rows_t[r[ok]]])
            out_d.append(rows_d[k[ok]])
    return np.concatenate(out_t), np.concatenate(out_d)
