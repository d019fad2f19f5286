"""A uniform grid over the jurisdictions' boundary segments, and the numba kernels that use it.

Built once at start-up (with shapely), queried per track update without it:

* every boundary segment (exterior rings and holes, all polygons) is cut into pieces
  no longer than a cell and listed in the cells its bounding box touches
  (compressed rows: ``cell_start``, ``cell_seg``);
* for every cell a reference point (its centre, moved if that lies on a boundary) and
  the reference point's containment in every polygon (``ref``, ``ref_inside``).

**Containment** of a point p in cell c: start from the reference point's containment
and flip polygon j's bit for every segment of j that the segment ref→p crosses.  That
segment stays inside the cell, so every boundary it can cross is listed there
(ray-crossing parity, half-open at vertices so a path through a vertex counts once).

**Signed distance** to polygon j: the nearest of j's segments in the cells within
``radius`` of p; beyond it P(inside) is 0 or 1 to within Φ(−6).  Then, with n the unit
vector from the nearest boundary point to p and s the distance (positive inside):

    σₙ = √(nᵀ Σ n),    P(inside) = Φ(s / σₙ) = ½ erfc(−s / (σₙ √2))

**Path crossings and first reach** (crossing decisions, approach warnings): every
boundary segment in the cells a path segment's bounding box touches, intersected
with it: with r = b − a, s = q − p, the paths meet at a + t·r = p + u·s,

    t = ((p − a) × s) / (r × s),   u = ((p − a) × r) / (r × s),   0 ≤ t, u ≤ 1

(touching counts, as in shapely's ``intersects``; a parallel overlap is no point).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from numba import njit

__all__ = ["BoundaryGrid"]

_TARGET_CELLS = 256  # cells along the longer side of the jurisdictions' extent
# where a reference point may sit, in cells from the centre: the first one off every boundary is used
_REF_OFFSETS = ((0.0, 0.0), (0.123, 0.314), (-0.271, 0.183), (0.377, -0.229), (-0.061, -0.411))


class BoundaryGrid:
    """The grid arrays (see the module docstring) for ``polygons`` (shapely Polygon/MultiPolygon)."""

    def __init__(self, polygons, cell_m: float | None = None) -> None:
        a, b, owner = _segments(polygons)
        lo = np.minimum(a, b).min(axis=0)
        hi = np.maximum(a, b).max(axis=0)
        self.cell = float(cell_m or max(25.0, float((hi - lo).max()) / _TARGET_CELLS))
        self.origin = lo - self.cell  # one empty cell of margin on every side
        self.shape = (int(np.ceil((hi[0] - self.origin[0]) / self.cell)) + 2,
                      int(np.ceil((hi[1] - self.origin[1]) / self.cell)) + 2)
        a, b, owner = _split(a, b, owner, self.cell)
        self.seg_a, self.seg_b, self.seg_owner = a, b, owner
        self.n_polygons = len(polygons)
        self.cell_start, self.cell_seg = self._bin(a, b)
        self.ref = self._reference_points()
        self.ref_inside = np.column_stack([shapely.intersects_xy(p, self.ref[:, 0], self.ref[:, 1])
                                           for p in polygons]).astype(np.bool_)
        nx, ny = self.shape
        self._args = (self.origin[0], self.origin[1], self.cell, nx, ny, self.cell_start, self.cell_seg,
                      self.seg_a, self.seg_b, self.seg_owner)
        self.inside_probability(np.zeros((1, 2)), np.eye(2)[None], 6.0)  # compile or load from cache now
        self.first_reach(np.zeros((1, 2)), np.ones((1, 2)), np.zeros(1, np.int64))
        self.path_crossings(np.array([[0.0, 0.0], [1.0, 1.0]]), [0])

    def _reference_points(self) -> np.ndarray:
        """Per cell a point of the cell off every boundary (parity from a point on one is ambiguous)."""
        nx, ny = self.shape
        ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        centres = self.origin + (np.column_stack((ix.ravel(), iy.ravel())) + 0.5) * self.cell
        ref = centres.copy()
        tree = shapely.STRtree(shapely.linestrings(np.stack((self.seg_a, self.seg_b), axis=1)))
        todo = np.arange(ref.shape[0])
        for offset in _REF_OFFSETS:
            ref[todo] = centres[todo] + np.array(offset) * self.cell
            on_boundary, _ = tree.query(shapely.points(ref[todo]), predicate="dwithin", distance=1e-6 * self.cell)
            todo = todo[np.unique(on_boundary)]
            if todo.size == 0:
                return ref
        raise ValueError("jurisdiction boundaries too dense for the geofence grid (a cell has no free point)")

    def _bin(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compressed rows cell → segments, from each segment's bounding box of cells."""
        nx, ny = self.shape
        c0 = np.floor((np.minimum(a, b) - self.origin) / self.cell).astype(np.int64)
        c1 = np.floor((np.maximum(a, b) - self.origin) / self.cell).astype(np.int64)
        cells, segs = [], []
        for dx in range(int((c1 - c0)[:, 0].max()) + 1):
            for dy in range(int((c1 - c0)[:, 1].max()) + 1):
                use = (c0[:, 0] + dx <= c1[:, 0]) & (c0[:, 1] + dy <= c1[:, 1])
                cells.append((c0[use, 0] + dx) * ny + c0[use, 1] + dy)
                segs.append(np.flatnonzero(use))
        cells, segs = np.concatenate(cells), np.concatenate(segs)
        order = np.lexsort((segs, cells))
        start = np.zeros(nx * ny + 1, np.int64)
        np.add.at(start, cells + 1, 1)
        return np.cumsum(start), segs[order].astype(np.int64)

    def inside_probability(self, xy: np.ndarray, cov: np.ndarray, certain_sigmas: float) -> np.ndarray:
        """(n, J) P(inside polygon j) for estimates ``xy`` (n, 2) with covariances ``cov`` (n, 2, 2)."""
        out = np.empty((xy.shape[0], self.n_polygons))
        _inside_probability(np.ascontiguousarray(xy, np.float64), np.ascontiguousarray(cov, np.float64),
                            float(certain_sigmas), self.ref, self.ref_inside, out, *self._args)
        return out

    def first_reach(self, starts: np.ndarray, ends: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """(n,) fraction along ``starts[i]``→``ends[i]`` where it first meets the boundary of polygon
        ``owners[i]`` (inf: it does not)."""
        out = np.full(starts.shape[0], np.inf)
        _first_reach(np.ascontiguousarray(starts, np.float64), np.ascontiguousarray(ends, np.float64),
                     np.ascontiguousarray(owners, np.int64), out, *self._args)
        return out

    def path_crossings(self, path_xy: np.ndarray, polygons) -> tuple[np.ndarray, np.ndarray]:
        """Where the path's segments meet the boundaries of ``polygons``: (segment index, fraction along it).

        Unordered, and a point on the joint of two boundary pieces may appear twice.
        """
        wanted = np.zeros(self.n_polygons, np.bool_)
        wanted[np.asarray(polygons, np.int64)] = True
        path_xy = np.ascontiguousarray(path_xy, np.float64)
        capacity = 16
        while True:
            k, fraction = np.empty(capacity, np.int64), np.empty(capacity)
            n = _path_crossings(path_xy, wanted, k, fraction, *self._args)
            if n <= capacity:
                return k[:n], fraction[:n]
            capacity = n


def _segments(polygons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end and owning polygon of every segment of every ring (holes and parts included)."""
    a, b, owner = [], [], []
    for j, polygon in enumerate(polygons):
        for line in shapely.get_parts(shapely.boundary(polygon)):
            xy = shapely.get_coordinates(line)
            a.append(xy[:-1])
            b.append(xy[1:])
            owner.append(np.full(len(xy) - 1, j, np.int64))
    return np.concatenate(a), np.concatenate(b), np.concatenate(owner)


def _split(a: np.ndarray, b: np.ndarray, owner: np.ndarray, cell: float):
    """Segments cut into equal collinear pieces no longer than ``cell`` (so each touches ≤ 2×2 cells)."""
    pieces = np.maximum(1, np.ceil(np.hypot(*(b - a).T) / cell)).astype(np.int64)
    k = np.repeat(np.arange(a.shape[0]), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    f0 = ((np.arange(k.size) - first) / pieces[k])[:, None]
    f1 = ((np.arange(k.size) - first + 1) / pieces[k])[:, None]
    d = b[k] - a[k]
    ends = np.where(f1 == 1.0, b[k], a[k] + f1 * d)  # the last piece ends exactly on the vertex
    return a[k] + f0 * d, ends, owner[k]


@njit(cache=True)
def _orient(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


@njit(cache=True)
def _crosses_half_open(cx, cy, px, py, ax, ay, bx, by):
    """Does the segment c→p cross segment a–b (a vertex on c→p belongs to its positive side)?"""
    sa = _orient(cx, cy, px, py, ax, ay) >= 0.0
    sb = _orient(cx, cy, px, py, bx, by) >= 0.0
    if sa == sb:
        return False
    return (_orient(ax, ay, bx, by, cx, cy) > 0.0) != (_orient(ax, ay, bx, by, px, py) > 0.0)


@njit(cache=True)
def _cell_range(v, origin, cell, n):
    return min(max(int(math.floor((v - origin) / cell)), 0), n - 1)


@njit(cache=True)
def _inside_probability(xy, cov, certain_sigmas, ref, ref_inside, out,
                        x0, y0, cell, nx, ny, cell_start, cell_seg, seg_a, seg_b, seg_owner):
    """Containment into ``out`` first (0/1 per polygon), then Φ(s/σₙ) for the polygons with a
    boundary within ``radius`` (``touched``); the others keep their 0/1."""
    n_poly = ref_inside.shape[1]
    best = np.full(n_poly, np.inf)
    near = np.empty((n_poly, 2))
    touched = np.empty(n_poly, np.int64)
    for i in range(xy.shape[0]):
        px, py = xy[i, 0], xy[i, 1]
        cx = int(math.floor((px - x0) / cell))
        cy = int(math.floor((py - y0) / cell))
        if 0 <= cx < nx and 0 <= cy < ny:
            c = cx * ny + cy
            for j in range(n_poly):
                out[i, j] = 1.0 if ref_inside[c, j] else 0.0
            mx, my = ref[c, 0], ref[c, 1]
            for k in range(cell_start[c], cell_start[c + 1]):
                s = cell_seg[k]
                if _crosses_half_open(mx, my, px, py, seg_a[s, 0], seg_a[s, 1], seg_b[s, 0], seg_b[s, 1]):
                    out[i, seg_owner[s]] = 1.0 - out[i, seg_owner[s]]
        else:
            out[i, :] = 0.0  # outside the grid: outside every polygon
        sxx, syy, sxy = cov[i, 0, 0], cov[i, 1, 1], cov[i, 0, 1]
        radius = certain_sigmas * math.sqrt(max(sxx, syy) + abs(sxy))
        n_touched = 0
        for gx in range(_cell_range(px - radius, x0, cell, nx), _cell_range(px + radius, x0, cell, nx) + 1):
            for gy in range(_cell_range(py - radius, y0, cell, ny), _cell_range(py + radius, y0, cell, ny) + 1):
                c = gx * ny + gy
                for k in range(cell_start[c], cell_start[c + 1]):
                    s = cell_seg[k]
                    ax, ay = seg_a[s, 0], seg_a[s, 1]
                    dx, dy = seg_b[s, 0] - ax, seg_b[s, 1] - ay
                    length2 = dx * dx + dy * dy
                    f = 0.0 if length2 == 0.0 else min(max(((px - ax) * dx + (py - ay) * dy) / length2, 0.0), 1.0)
                    qx, qy = ax + f * dx, ay + f * dy
                    d2 = (px - qx) ** 2 + (py - qy) ** 2
                    j = seg_owner[s]
                    if d2 < radius * radius and d2 < best[j]:
                        if best[j] == np.inf:
                            touched[n_touched] = j
                            n_touched += 1
                        best[j] = d2
                        near[j, 0], near[j, 1] = qx, qy
        for m in range(n_touched):
            j = touched[m]
            d = math.sqrt(best[j])
            if d > 0.0:
                ux, uy = (px - near[j, 0]) / d, (py - near[j, 1]) / d
            else:
                ux, uy = 1.0, 0.0
            sigma_n = math.sqrt(max(ux * ux * sxx + 2.0 * ux * uy * sxy + uy * uy * syy, 1e-18))
            signed = d if out[i, j] > 0.5 else -d
            out[i, j] = 0.5 * math.erfc(-signed / (sigma_n * math.sqrt(2.0)))
            best[j] = np.inf


@njit(cache=True)
def _first_reach(starts, ends, owners, out, x0, y0, cell, nx, ny, cell_start, cell_seg, seg_a, seg_b, seg_owner):
    for i in range(starts.shape[0]):
        ax, ay, bx, by = starts[i, 0], starts[i, 1], ends[i, 0], ends[i, 1]
        for gx in range(_cell_range(min(ax, bx), x0, cell, nx), _cell_range(max(ax, bx), x0, cell, nx) + 1):
            for gy in range(_cell_range(min(ay, by), y0, cell, ny), _cell_range(max(ay, by), y0, cell, ny) + 1):
                c = gx * ny + gy
                for m in range(cell_start[c], cell_start[c + 1]):
                    s = cell_seg[m]
                    if seg_owner[s] == owners[i]:
                        t = _meet(ax, ay, bx, by, seg_a[s, 0], seg_a[s, 1], seg_b[s, 0], seg_b[s, 1])
                        out[i] = min(out[i], t)


@njit(cache=True)
def _meet(ax, ay, bx, by, px, py, qx, qy):
    """Fraction along a→b where it meets segment p–q (inf: it does not, or runs parallel to it)."""
    rx, ry, sx, sy = bx - ax, by - ay, qx - px, qy - py
    denom = rx * sy - ry * sx
    if denom == 0.0:
        return np.inf
    t = ((px - ax) * sy - (py - ay) * sx) / denom
    u = ((px - ax) * ry - (py - ay) * rx) / denom
    return t if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0 else np.inf


@njit(cache=True)
def _path_crossings(path, wanted, k_out, f_out, x0, y0, cell, nx, ny, cell_start, cell_seg, seg_a, seg_b, seg_owner):
    """Fill (segment index, fraction) of path/boundary intersections; returns how many there are
    (only the first ``len(k_out)`` are stored: call again with room for all)."""
    n = 0
    for k in range(path.shape[0] - 1):
        ax, ay, bx, by = path[k, 0], path[k, 1], path[k + 1, 0], path[k + 1, 1]
        if ax == bx and ay == by:
            continue
        for gx in range(_cell_range(min(ax, bx), x0, cell, nx), _cell_range(max(ax, bx), x0, cell, nx) + 1):
            for gy in range(_cell_range(min(ay, by), y0, cell, ny), _cell_range(max(ay, by), y0, cell, ny) + 1):
                c = gx * ny + gy
                for m in range(cell_start[c], cell_start[c + 1]):
                    s = cell_seg[m]
                    if not wanted[seg_owner[s]]:
                        continue
                    t = _meet(ax, ay, bx, by, seg_a[s, 0], seg_a[s, 1], seg_b[s, 0], seg_b[s, 1])
                    if t <= 1.0:
                        if n < k_out.shape[0]:
                            k_out[n], f_out[n] = k, t
                        n += 1
    return n
