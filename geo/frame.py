"""The site's local east/north/up frame.

Every position inside borderfusion is expressed in one topocentric frame whose
origin is the site origin from the config (``[site].origin``).  The conversion is
PROJ's exact pipeline

    geodetic (lon, lat, h) --cart--> ECEF (X, Y, Z) --topocentric--> (e, n, u)

where the topocentric step is the rotation

    [e]   [      -sin λ0          cos λ0        0   ] [X - X0]
    [n] = [-sin φ0 cos λ0   -sin φ0 sin λ0   cos φ0 ] [Y - Y0]
    [u]   [ cos φ0 cos λ0    cos φ0 sin λ0   sin φ0 ] [Z - Z0]

about the origin (φ0, λ0, h0).  It is exact (no map projection), vectorised over
arrays, and round-trips to well below a millimetre.  Horizontal distances in the
frame are chords projected on the origin's tangent plane, so they fall short of
the geodesic distance by about d³/(6R²): 0.5 m at 50 km, 4 mm at 10 km.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pyproj import Geod, Transformer

__all__ = ["LocalFrame", "WGS84"]

WGS84 = Geod(ellps="WGS84")


@dataclass(frozen=True)
class LocalFrame:
    """WGS-84 ↔ local east/north/up about ``(origin_lat, origin_lon, origin_alt_m)``."""

    origin_lat: float
    origin_lon: float
    origin_alt_m: float = 0.0
    _transformer: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pipeline = (
            "+proj=pipeline +step +proj=cart +ellps=WGS84 "
            f"+step +proj=topocentric +ellps=WGS84 +lat_0={self.origin_lat!r} "
            f"+lon_0={self.origin_lon!r} +h_0={self.origin_alt_m!r}"
        )
        object.__setattr__(self, "_transformer", Transformer.from_pipeline(pipeline))

    def to_enu(self, lat, lon, alt_m=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Geodetic degrees and metres → (east_m, north_m, up_m) arrays.

        ``alt_m`` defaults to the origin's altitude (ground targets of unknown height).
        """
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        shape = np.broadcast(lat, lon).shape
        alt = np.broadcast_to(self.origin_alt_m if alt_m is None else np.asarray(alt_m, dtype=np.float64), shape)
        lat, lon = np.broadcast_to(lat, shape), np.broadcast_to(lon, shape)
        e, n, u = self._transformer.transform(lon, lat, alt)
        return np.asarray(e), np.asarray(n), np.asarray(u)

    def to_geodetic(self, east_m, north_m, up_m=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local (east, north, up) metres → (lat, lon, alt_m) arrays."""
        east = np.asarray(east_m, dtype=np.float64)
        north = np.asarray(north_m, dtype=np.float64)
        shape = np.broadcast(east, north).shape
        up = np.broadcast_to(0.0 if up_m is None else np.asarray(up_m, dtype=np.float64), shape)
        east, north = np.broadcast_to(east, shape), np.broadcast_to(north, shape)
        lon, lat, alt = self._transformer.transform(east, north, up, direction="INVERSE")
        return np.asarray(lat), np.asarray(lon), np.asarray(alt)

    def point_to_geodetic(self, east_m: float, north_m: float, up_m: float = 0.0) -> tuple[float, float, float]:
        """One local point → (lat, lon, alt_m) floats: pyproj's scalar path, ~10× faster than arrays of one."""
        lon, lat, alt = self._transformer.transform(float(east_m), float(north_m), float(up_m), direction="INVERSE")
        return lat, lon, alt

    def north_rotation_rad(self, lat: float, lon: float, alt_m: float | None = None) -> float:
        """Angle γ from the frame's north axis to true north at ``(lat, lon)``.

        A bearing β measured against true north at that point points along
        ``(sin(β + γ), cos(β + γ))`` in the frame (the meridian convergence, about
        Δλ·sin φ: 0.07° at 8 km east of the origin at 47° N).
        """
        lon2, lat2, _ = WGS84.fwd(lon, lat, 0.0, 100.0)
        e0, n0, _ = self.to_enu(lat, lon, alt_m)
        e1, n1, _ = self.to_enu(lat2, lon2, alt_m)
        return math.atan2(float(e1 - e0), float(n1 - n0))
