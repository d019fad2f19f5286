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

__all__ = ["JurisdictionIndex"]


_CHUNK_SEGMENTS = 16


def _boundary_chunks(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ring cut into linestrings of at most ``_CHUNK_SEGMENTS`` segments, with their polygon index.

    Indexing small chunks instead of whole boundaries keeps each distance or
    intersection test local: a 5,000-vertex border costs a few chunks, not 5,000 vertices.
    """
    chunks, owner = [], []
    for j, polygon in enumerate(polygons):
        for ring in shapely.get_rings(polygon):
            xy = shapely.get_coordinates(ring)
            for start in range(0, len(xy) - 1, _CHUNK_SEGMENTS):
                chunks.append(shapely.linestrings(xy[start:start + _CHUNK_SEGMENTS + 1]))
                owner.append(j)
    return np.array(chunks, dtype=object), np.array(owner, dtype=np.int64)


class JurisdictionIndex:
    """Polygons prepared and indexed once; answers P(inside) for arrays of estimates."""

    def __init__(self, polygons: list, certain_sigmas: float = 6.0) -> None:
        self.polygons = np.array(polygons, dtype=object)
        self.boundaries = shapely.boundary(self.polygons)
        for geometry in (*self.polygons, *self.boundaries):
            shapely.prepare(geometry)
        self._polygon_tree = STRtree(self.polygons)
        self.chunks, self.chunk_owner = _boundary_chunks(self.polygons)
        self._chunk_tree = STRtree(self.chunks)
        self.certain_sigmas = certain_sigmas

    def __len__(self) -> int:
        return len(self.polygons)

    def inside(self, xy: np.ndarray) -> np.ndarray:
        """(n, J) bool: point i inside (or on) polygon j."""
        out = np.zeros((xy.shape[0], len(self.polygons)), bool)
        if xy.shape[0] == 0:
            return out
        # bounding boxes from the tree, then the prepared polygon's indexed point-in-polygon test
        point_idx, poly_idx = self._polygon_tree.query(shapely.points(xy))
        for j in np.unique(poly_idx):
            rows = point_idx[poly_idx == j]
            out[rows, j] = shapely.intersects_xy(self.polygons[j], xy[rows, 0], xy[rows, 1])
        return out

    def inside_probability(self, xy: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """(n, J) P(inside polygon j) for estimates ``xy`` (n,2) with covariances ``cov`` (n,2,2)."""
        inside = self.inside(xy)
        probability = inside.astype(np.float64)
        if xy.shape[0] == 0:
            return probability
        sigma_max = np.sqrt(np.maximum(cov[:, 0, 0], cov[:, 1, 1]) + np.abs(cov[:, 0, 1]))
        points = shapely.points(xy)
        point_idx, chunk_idx = self._chunk_tree.query(
            points, predicate="dwithin", distance=self.certain_sigmas * float(sigma_max.max()))
        if point_idx.size == 0:
            return probability
        lines = shapely.shortest_line(self.chunks[chunk_idx], points[point_idx])
        nearest = shapely.get_coordinates(lines).reshape(-1, 2, 2)[:, 0]
        offset = xy[point_idx] - nearest
        distance = np.hypot(offset[:, 0], offset[:, 1])
        # per (point, polygon) keep the nearest of its boundary chunks
        poly_idx = self.chunk_owner[chunk_idx]
        order = np.lexsort((distance, poly_idx, point_idx))
        first = np.ones(order.size, bool)
        first[1:] = (np.diff(point_idx[order]) != 0) | (np.diff(poly_idx[order]) != 0)
        keep = order[first]
        point_idx, poly_idx, offset, distance = point_idx[keep], poly_idx[keep], offset[keep], distance[keep]
        normal = np.divide(offset, distance[:, None], out=np.tile([1.0, 0.0], (distance.size, 1)),
                           where=distance[:, None] > 0)
        c = cov[point_idx]
        sigma_n = np.sqrt(np.einsum("ki,kij,kj->k", normal, c, normal))
        signed = np.where(inside[point_idx, poly_idx], distance, -distance)
        probability[point_idx, poly_idx] = ndtr(signed / np.maximum(sigma_n, 1e-9))
        return probability

    def segments_reaching(self, starts: np.ndarray, ends: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """(n,) bool: segment i from ``starts[i]`` to ``ends[i]`` meets the boundary of polygon ``owners[i]``."""
        if starts.shape[0] == 0:
            return np.zeros(0, bool)
        segments = shapely.linestrings(np.stack((starts, ends), axis=1))
        seg_idx, chunk_idx = self._chunk_tree.query(segments, predicate="intersects")
        hit = np.zeros(starts.shape[0], bool)
        hit[seg_idx[self.chunk_owner[chunk_idx] == owners[seg_idx]]] = True
        return hit

    def crossings(self, path_xy: np.ndarray, path_t: np.ndarray, polygons) -> list[tuple[float, np.ndarray]]:
        """Where a piecewise-linear path crosses the boundaries of ``polygons``: [(t, point)], in time order.

        One indexed query of all the path's segments against the boundary chunks;
        only the (segment, chunk) pairs that meet are intersected.  Times are
        interpolated linearly on the crossing segment; a point found on two adjacent
        chunks (or two polygons' shared border) is reported once.
        """
        a, b = path_xy[:-1], path_xy[1:]
        moved = np.flatnonzero(np.any(~np.isclose(a, b), axis=1))
        if moved.size == 0:
            return []
        segments = shapely.linestrings(np.stack((a[moved], b[moved]), axis=1))
        seg, chunk = self._chunk_tree.query(segments, predicate="intersects")
        keep = np.isin(self.chunk_owner[chunk], np.asarray(polygons))
        if not keep.any():
            return []
        seg, chunk = seg[keep], chunk[keep]
        points, which = shapely.get_coordinates(shapely.intersection(segments[seg], self.chunks[chunk]),
                                                return_index=True)
        k = moved[seg[which]]
        length = np.hypot(*(b[k] - a[k]).T)
        fraction = np.round(np.clip(np.hypot(*(points - a[k]).T) / length, 0.0, 1.0), 12)
        order = np.unique(np.column_stack((k, fraction)), axis=0)  # sorted by segment, then along it
        k, fraction = order[:, 0].astype(np.int64), order[:, 1]
        t = path_t[k] + fraction * (path_t[k + 1] - path_t[k])
        xy = a[k] + fraction[:, None] * (b[k] - a[k])
        return list(zip(t.tolist(), xy))

    def containing(self, point: np.ndarray) -> np.ndarray:
        """Indices of polygons containing one point."""
        return np.flatnonzero(self.inside(np.asarray(point, float).reshape(1, 2))[0])
