"""The one type that leaves ``sensors``: a scan of normalized detections.

A :class:`Scan` is what one sensor saw at one time, already in the site's local
east/north frame, as contiguous numpy arrays checked once when it is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Scan", "N_CLASSES"]

N_CLASSES = 5


@dataclass(frozen=True, eq=False)
class Scan:
    """Detections of one sensor message, in the local frame.

    Per detection (``n`` of them):

    * ``t`` (n,) sensor time, UNIX s
    * ``position`` (n, 2) east, north in m
    * ``covariance`` (n, 2, 2) position covariance in m²
    * ``radial_velocity`` (n,) m/s, positive away from the sensor; NaN when absent
    * ``radial_velocity_sigma`` (n,) m/s
    * ``line_of_sight`` (n, 2) unit vector from the sensor to the detection
    * ``class_likelihood`` (n, 5) over :data:`sensors.schema.CLASSES`, rows sum to 1
    * ``sensor_index`` (n,) index of the sensor in the site config
    * ``can_initiate`` (n,) whether the detection may start a new track

    Per scan: where the sensor looked (``coverage_center``, ``coverage_radius_m``;
    radius 0 means 'no statement about absent targets', as for ground sensors), its
    ``detection_probability`` there and the ``clutter_density`` of false detections
    per m² inside the coverage.  ``coverage_sector_rad`` = (start, width) narrows the
    coverage to the bearings from its centre clockwise from ``start`` (local frame, from
    the frame's north) through ``width``; width 2π (the default) is the whole circle.
    """

    sensor_id: str
    sensor_index: int
    time: float
    t: np.ndarray
    position: np.ndarray
    covariance: np.ndarray
    radial_velocity: np.ndarray
    radial_velocity_sigma: np.ndarray
    line_of_sight: np.ndarray
    class_likelihood: np.ndarray
    can_initiate: np.ndarray
    coverage_center: tuple[float, float]
    coverage_radius_m: float
    detection_probability: float
    clutter_density: float
    coverage_sector_rad: tuple[float, float] = (0.0, math.tau)

    def __post_init__(self) -> None:
        n = self.position.shape[0]
        shapes = {
            "t": (n,), "position": (n, 2), "covariance": (n, 2, 2), "radial_velocity": (n,),
            "radial_velocity_sigma": (n,), "line_of_sight": (n, 2),
            "class_likelihood": (n, N_CLASSES), "can_initiate": (n,),
        }
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"Scan.{name} has shape {value.shape}, expected {shape}")
            if not value.flags.c_contiguous:  # a column of a larger array: the kernels take contiguous ones
                object.__setattr__(self, name, np.ascontiguousarray(value))
        if not (np.isfinite(self.position).all() and np.isfinite(self.covariance).all()):
            raise ValueError("Scan positions and covariances must be finite")

    def __repr__(self) -> str:
        return f"Scan({self.sensor_id!r}, t={self.time!r}, {self.size} detections)"

    @property
    def size(self) -> int:
        return int(self.position.shape[0])
