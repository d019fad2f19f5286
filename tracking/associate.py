"""Global nearest neighbour association per scan.

The gated pairs form a bipartite graph (clusters by union-find,
:func:`~tracking.kernels.pair_clusters`); each connected cluster is solved apart
from the others with ``scipy.optimize.linear_sum_assignment``, minimising
Σ −2 ln Σ_m μ_m N(z; ẑ_m, S_m), the negative log-likelihood of the assignment under
each track's model mixture (:func:`~tracking.imm.pair_log_likelihood`; with one model
Σ (d² + ln|S|) up to constants).
Pairs outside the gate cost ``_FORBIDDEN``, so the solver first maximises the
number of gated assignments, then their likelihood.  A lone pair (one track, one detection, no
rivals), by far the most common case, is assigned without the solver.  The
clusters of rival pairs are packed into block-diagonal problems of up to
``_BATCH_ENTRIES`` entries (:func:`~tracking.kernels.rival_problems`, which also
builds their cost matrices; the same optimum, as the objective separates over
blocks), so one solver call serves many small clusters.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from tracking.kernels import rival_problems

__all__ = ["assign"]

_FORBIDDEN = 1e9
_BATCH_ENTRIES = 4096  # entries of one block-diagonal problem


def assign(track_rows: np.ndarray, det_rows: np.ndarray, cost: np.ndarray, capacity: int,
           n_det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (track row, detection row) of the GNN assignment, each row used at most once,
    and which detections fell in any gate."""
    lone, gated, costs, cost_at, shape, track_of, det_of, row_at, col_at = rival_problems(
        track_rows, det_rows, cost, capacity, n_det, _BATCH_ENTRIES, _FORBIDDEN)
    if shape.shape[0] == 0:
        return track_rows, det_rows, gated
    out_t, out_d = [track_rows[lone]], [det_rows[lone]]
    for b in range(shape.shape[0]):
        matrix = costs[cost_at[b]:cost_at[b + 1]].reshape(shape[b, 0], shape[b, 1])
        r, k = linear_sum_assignment(matrix)
        ok = matrix[r, k] < _FORBIDDEN  # pairs outside every gate are no assignment
        out_t.append(track_of[row_at[b] + r[ok]])
        out_d.append(det_of[col_at[b] + k[ok]])
    return np.concatenate(out_t), np.concatenate(out_d), gated
