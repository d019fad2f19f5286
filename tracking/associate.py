"""Global nearest neighbour association per scan.

The gated pairs form a bipartite graph (clusters by union-find,
:func:`~tracking.kernels.pair_clusters`); each connected cluster is solved apart
from the others with ``scipy.optimize.linear_sum_assignment``, minimising
Σ (d² + ln|S|), the negative log-likelihood of the assignment up to constants.
Pairs outside the gate cost ``_FORBIDDEN``, so the solver first maximises the
number of gated assignments, then their likelihood.  A lone pair (one track, one detection, no
rivals), by far the most common case, is assigned without the solver.  The
clusters of rival pairs are packed into block-diagonal problems of up to
``_BATCH_ENTRIES`` entries (:func:`~tracking.kernels.cluster_batches`; the same
optimum, as the objective separates over blocks), so one solver call serves many
small clusters.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from tracking.kernels import cluster_batches, lone_pairs

__all__ = ["assign"]

_FORBIDDEN = 1e9
_BATCH_ENTRIES = 4096  # entries of one block-diagonal problem


def assign(track_rows: np.ndarray, det_rows: np.ndarray, cost: np.ndarray, capacity: int,
           n_det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (track row, detection row) of the GNN assignment, each row used at most once,
    and which detections fell in any gate."""
    lone, gated = lone_pairs(track_rows, det_rows, capacity, n_det)
    if lone.all():
        return track_rows, det_rows, gated
    out_t, out_d = [track_rows[lone]], [det_rows[lone]]
    rest = ~lone
    tracks, ti = np.unique(track_rows[rest], return_inverse=True)
    dets, dj = np.unique(det_rows[rest], return_inverse=True)
    c = cost[rest]
    batch, lt, ld, shape = cluster_batches(ti, dj, tracks.size, dets.size, _BATCH_ENTRIES)
    order = np.argsort(batch, kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(batch[order])) + 1):
        nt, nd = shape[batch[members[0]]]
        r, k = _solve(lt[members], ld[members], c[members], nt, nd)
        track_of, det_of = np.empty(nt, np.int64), np.empty(nd, np.int64)
        track_of[lt[members]] = ti[members]
        det_of[ld[members]] = dj[members]
        out_t.append(tracks[track_of[r]])
        out_d.append(dets[det_of[k]])
    return np.concatenate(out_t), np.concatenate(out_d), gated


def _solve(ti: np.ndarray, dj: np.ndarray, cost: np.ndarray, nt: int, nd: int) -> tuple[np.ndarray, np.ndarray]:
    """The optimal pairs (local indices) of one sparse problem; pairs outside every gate are dropped."""
    matrix = np.full((nt, nd), _FORBIDDEN)
    matrix[ti, dj] = cost
    r, k = linear_sum_assignment(matrix)
    ok = matrix[r, k] < _FORBIDDEN
    return r[ok], k[ok]
