"""Vectorised geometry of uncertain positions against jurisdiction polygons.

Probability of being inside a polygon for a position estimate m with covariance Σ,
from the signed distance s to the boundary (positive inside) and the standard
deviation along the boundary normal n at the nearest boundary point:

    σₙ = √(nᵀ Σ n),    P(inside) ≈ Φ(s / σₙ)

(a locally straight boundary; exact for a half-plane).  Points farther than
``certain_sigmas`` σ from every boundary skip the nearest-point computation: there
P is 0 or 1 to within Φ(−6) ≈ 1e−9.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.special import ndtr
from shapely import STRtree

__all__ = ["JurisdictionIndex", "crossings_along"]


class JurisdictionIndex:
    """Polygons prepared and indexed once; answers P(inside) for arrays of estimates."""

    def __init__(self, polygons: list, certain_sigmas: float = 6.0) -> None:
        self.polygons = np.array(polygons, dtype=object)
        self.boundaries = shapely.boundary(self.polygons)
        for geometry in (*self.polygons, *self.boundaries):
            shapely.prepare(geometry)
        self._polygon_tree = STRtree(self.polygons)
        self._boundary_tree = STRtree(self.boundaries)
        self.certain_sigmas = certain_sigmas

    def __len__(self) -> int:
        return len(self.polygons)

    def inside(self, xy: np.ndarray) -> np.ndarray:
        """(n, J) bool: point i inside (or on) polygon j."""
        out = np.zeros((xy.shape[0], len(self.polygons)), bool)
        if xy.shape[0]:
            point_idx, poly_idx = self._polygon_tree.query(shapely.points(xy), predicate="intersects")
            out[point_idx, poly_idx] = True
        return out

    def inside_probability(self, xy: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """(n, J) P(inside polygon j) for estimates ``xy`` (n,2) with covariances ``cov`` (n,2,2)."""
        inside = self.inside(xy)
        probability = inside.astype(np.float64)
        if xy.shape[0] == 0:
            return probability
        sigma_max = np.sqrt(np.maximum(cov[:, 0, 0], cov[:, 1, 1]) + np.abs(cov[:, 0, 1]))
        points = shapely.points(xy)
        point_idx, poly_idx = self._boundary_tree.query(
            points, predicate="dwithin", distance=self.certain_sigmas * float(sigma_max.max()))
        if point_idx.size == 0:
            return probability
        lines = shapely.shortest_line(self.boundaries[poly_idx], points[point_idx])
        ends = shapely.get_coordinates(lines).reshape(-1, 2, 2)
        nearest = ends[:, 0]
        offset = xy[point_idx] - nearest
        distance = np.hypot(offset[:, 0], offset[:, 1])
        normal = np.divide(offset, distance[:, None], out=np.tile([1.0, 0.0], (distance.size, 1)),
                           where=distance[:, None] > 0)
        c = cov[point_idx]
        sigma_n = np.sqrt(np.einsum("ki,kij,kj->k", normal, c, normal))
        signed = np.where(inside[point_idx, poly_idx], distance, -distance)
        probability[point_idx, poly_idx] = ndtr(signed / np.maximum(sigma_n, 1e-9))
        return probability

    def containing(self, point: np.ndarray) -> np.ndarray:
        """Indices of polygons containing one point."""
        return np.flatnonzero(self.inside(np.asarray(point, float).reshape(1, 2))[0])


def crossings_along(path_xy: np.ndarray, path_t: np.ndarray, boundary) -> list[tuple[float, np.ndarray]]:
    """Where a piecewise-linear path crosses ``boundary``: [(t, point)] in path order.

    Times are interpolated linearly on the segment that crosses.
    """
    out: list[tuple[float, np.ndarray]] = []
    for k in range(len(path_xy) - 1):
        a, b = path_xy[k], path_xy[k + 1]
        if np.allclose(a, b):
            continue
        segment = shapely.linestrings([a, b])
        hit = shapely.intersection(segment, boundary)
        if hit.is_empty:
            continue
        points = shapely.get_coordinates(hit)
        length = float(np.hypot(*(b - a)))
        fractions = np.clip(np.hypot(*(points - a).T) / length, 0.0, 1.0)
        for f in np.unique(np.round(fractions, 12)):
            out.append((float(path_t[k] + f * (path_t[k + 1] - path_t[k])), a + f * (b - a)))
    return out
