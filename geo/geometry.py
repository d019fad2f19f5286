"""Geometry of uncertain positions against jurisdiction polygons: the queries the geofence asks.

Probability of being inside a polygon for a position estimate m with covariance Σ,
from the signed distance s to the boundary (positive inside) and the standard
deviation along the boundary normal n at the nearest boundary point:

    σₙ = √(nᵀ Σ n),    P(inside) ≈ Φ(s / σₙ)

(a locally straight boundary; exact for a half-plane).  Points farther than
``certain_sigmas`` σ from every boundary skip the nearest-point computation: there
P is 0 or 1 to within Φ(−6) ≈ 1e−9.  All of it runs in the numba kernels of
:mod:`geo.grid`; shapely only builds the grid.
"""

from __future__ import annotations

import numpy as np

from geo.grid import BoundaryGrid

__all__ = ["JurisdictionIndex"]


class JurisdictionIndex:
    """Polygons indexed once (a :class:`~geo.grid.BoundaryGrid`); answers for arrays of estimates."""

    def __init__(self, polygons: list, certain_sigmas: float = 6.0) -> None:
        self.grid = BoundaryGrid(polygons)
        self.certain_sigmas = certain_sigmas

    def inside(self, xy: np.ndarray) -> np.ndarray:
        """(n, J) bool: point i inside (or on) polygon j."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        return self.grid.inside_probability(xy, np.zeros((xy.shape[0], 2, 2)), 0.0) > 0.5

    def inside_probability(self, xy: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """(n, J) P(inside polygon j) for estimates ``xy`` (n,2) with covariances ``cov`` (n,2,2)."""
        return self.grid.inside_probability(xy, cov, self.certain_sigmas)

    def first_reach(self, starts: np.ndarray, ends: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """(n,) fraction along ``starts[i]``→``ends[i]`` of its first point on the boundary of polygon
        ``owners[i]`` (inf: none)."""
        return self.grid.first_reach(starts, ends, owners)

    def crossings(self, path_xy: np.ndarray, path_t: np.ndarray, polygons) -> list[tuple[float, np.ndarray]]:
        """Where a piecewise-linear path crosses the boundaries of ``polygons``: [(t, point)], in time order.

        The grid's kernel finds the intersections; times are interpolated linearly on
        the crossing segment; a point found on two adjacent boundary pieces (or two
        polygons' shared border) is reported once.
        """
        a, b = path_xy[:-1], path_xy[1:]
        k, fraction = self.grid.path_crossings(path_xy, polygons)
        if k.size == 0:
            return []
        order = np.lexsort((fraction, k))  # by segment, then along it
        k, fraction = k[order], fraction[order]
        again = np.zeros(k.size, bool)
        again[1:] = (k[1:] == k[:-1]) & (fraction[1:] - fraction[:-1] < 1e-12)
        k, fraction = k[~again], fraction[~again]
        t = path_t[k] + fraction * (path_t[k + 1] - path_t[k])
        xy = a[k] + fraction[:, None] * (b[k] - a[k])
        return list(zip(t.tolist(), xy))

    def containing(self, point: np.ndarray) -> np.ndarray:
        """Indices of polygons containing one point."""
        return np.flatnonzero(self.inside(np.asarray(point, float).reshape(1, 2))[0])
