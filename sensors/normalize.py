"""Decoded sensor messages → :class:`~sensors.batch.Scan` in the local frame.

Radar (polar plot at the sensor, azimuth β against true north *there*):

    θ = β + γ          γ = rotation from the frame's north to true north at the radar
    p = s + r (sin θ, cos θ)
    J = ∂p/∂(r, θ) = [[sin θ,  r cos θ],
                      [cos θ, -r sin θ]]
    R = J diag(σ_r², σ_θ²) Jᵀ          (first-order converted-measurement covariance)

The planar conversion differs from the geodesic one by less than 0.1 m within
12 km (tested against ``pyproj.Geod.fwd``), far below any radar's σ_r.

Ground sensor at site s with detection radius ρ: without bearing the target is
taken as uniform in the disc, so p = s and R = (ρ²/4) I.  With bearing β (σ_β)
and optional range r (σ_r) the position is s + r̂ (sin θ, cos θ) with r̂ = r, or
the disc's mean radius 2ρ/3 (σ = ρ/√18) when no range is given, and R from the
same Jacobian as the radar.

Drone: the geolocation with σ = CEP / 1.1774 on each axis (for a circular normal
the CEP is σ √(2 ln 2)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geo.frame import LocalFrame
from sensors.batch import N_CLASSES, Scan
from sensors.schema import Classification, DroneReport, GroundEvent, RadarScan
from sensors.sector import sector_span_rad
from sensors.specs import DroneSpec, GroundSpec, RadarSpec, SensorSpec

__all__ = ["SensorModel", "polar_to_local", "class_likelihood", "CEP_TO_SIGMA", "DronePlacement", "place_drone_report"]

CEP_TO_SIGMA = 1.0 / math.sqrt(2.0 * math.log(2.0))  # = 1 / 1.1774
_UNIFORM = np.full(N_CLASSES, 1.0 / N_CLASSES)
#: spurious detections per drone report, spread over the camera footprint
_DRONE_FALSE_PER_REPORT = 0.05


def class_likelihood(classification: Classification | None) -> np.ndarray:
    """Class probabilities (sum ≤ 1) → a likelihood row summing to 1.

    The unassigned mass 1 − Σp is spread evenly over the five classes, so a sensor
    that says nothing is uninformative and one that says ``person: 0.7`` leaves
    0.06 to every class.
    """
    if classification is None:
        return _UNIFORM
    c = classification
    row = np.array((c.person, c.vehicle, c.animal, c.uav, c.unknown))
    return row + (1.0 - row.sum()) / N_CLASSES


def polar_to_local(
    origin: np.ndarray, range_m: np.ndarray, bearing_rad: np.ndarray,
    range_sigma_m: np.ndarray, bearing_sigma_rad: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polar (r, θ) about ``origin`` → positions (n,2), covariances (n,2,2), line of sight (n,2)."""
    s, c = np.sin(bearing_rad), np.cos(bearing_rad)
    los = np.stack((s, c), axis=1)
    position = origin + range_m[:, None] * los
    vr, va = range_sigma_m**2, (range_m * bearing_sigma_rad) ** 2
    cov = np.empty((range_m.shape[0], 2, 2))
    cov[:, 0, 0] = s * s * vr + c * c * va
    cov[:, 1, 1] = c * c * vr + s * s * va
    cov[:, 0, 1] = cov[:, 1, 0] = s * c * (vr - va)
    return position, cov, los


@dataclass(frozen=True)
class DronePlacement:
    """A drone report's detections in the local frame (``(n, 2)`` east/north) and its platform's
    ground position (None without a platform)."""

    detections_en: np.ndarray
    platform_en: tuple[float, float] | None


def place_drone_report(message: DroneReport, frame: LocalFrame) -> DronePlacement:
    """The detections and the platform of ``message`` in the local frame, all in one pyproj call
    (each call costs ~25 µs whatever its size, and both the footprint check and the scan need them).
    Heights are the frame origin's, as for any ground target of unknown height."""
    dets = message.detections
    lat = [d.lat for d in dets]
    lon = [d.lon for d in dets]
    if message.platform is not None:
        lat.append(message.platform.lat)
        lon.append(message.platform.lon)
    e, n, _ = frame.to_enu(np.array(lat, dtype=np.float64), np.array(lon, dtype=np.float64))
    platform = (float(e[-1]), float(n[-1])) if message.platform is not None else None
    return DronePlacement(np.stack((e[:len(dets)], n[:len(dets)]), axis=1).reshape(-1, 2), platform)


@dataclass(frozen=True)
class SensorModel:
    """One configured sensor, placed in the local frame once at start-up."""

    index: int
    spec: SensorSpec
    east_m: float = 0.0
    north_m: float = 0.0
    north_rotation_rad: float = 0.0

    @classmethod
    def place(cls, index: int, spec: SensorSpec, frame: LocalFrame) -> "SensorModel":
        if isinstance(spec, DroneSpec):
            return cls(index, spec)
        e, n, _ = frame.to_enu(spec.lat, spec.lon, spec.alt_m)
        return cls(index, spec, float(e), float(n), frame.north_rotation_rad(spec.lat, spec.lon, spec.alt_m))

    @property
    def kind(self) -> str:
        return type(self.spec).__struct_config__.tag

    def normalize(self, message, frame: LocalFrame, placement: DronePlacement | None = None) -> Scan:
        """A decoded message of this sensor's kind → a Scan in the local frame (a drone report's
        ``placement`` when already known, see :func:`place_drone_report`)."""
        if isinstance(self.spec, RadarSpec):
            return self._radar(message)
        if isinstance(self.spec, GroundSpec):
            return self._ground(message)
        return self._drone(message, placement or place_drone_report(message, frame))

    def _scan(self, message, position, covariance, likelihood, *, radial_velocity=None,
              rv_sigma=None, los=None, can_initiate=True, coverage=((0.0, 0.0), 0.0),
              detection_probability=0.0, clutter_density=0.0, sector_rad=(0.0, math.tau)) -> Scan:
        n = position.shape[0]
        nan = np.full(n, np.nan)
        return Scan(
            sensor_id=self.spec.id, sensor_index=self.index, time=message.t,
            t=np.full(n, message.t), position=position, covariance=covariance,
            radial_velocity=nan if radial_velocity is None else radial_velocity,
            radial_velocity_sigma=nan if rv_sigma is None else rv_sigma,
            line_of_sight=np.zeros((n, 2)) if los is None else los,
            class_likelihood=likelihood, can_initiate=np.full(n, can_initiate),
            coverage_center=coverage[0], coverage_radius_m=coverage[1],
            detection_probability=detection_probability, clutter_density=clutter_density,
            coverage_sector_rad=sector_rad,
        )

    def _radar(self, msg: RadarScan) -> Scan:
        spec: RadarSpec = self.spec
        nan = math.nan
        rows = np.array(
            [(p.range_m, p.azimuth_deg, nan if p.radial_velocity_mps is None else p.radial_velocity_mps,
              p.range_sigma_m or spec.range_sigma_m, p.azimuth_sigma_deg or spec.azimuth_sigma_deg)
             for p in msg.plots], dtype=np.float64,
        ).reshape(-1, 5)
        bearing = np.radians(rows[:, 1]) + self.north_rotation_rad
        position, cov, los = polar_to_local(
            np.array((self.east_m, self.north_m)), rows[:, 0], bearing, rows[:, 3], np.radians(rows[:, 4]))
        likelihood = np.tile(_UNIFORM, (rows.shape[0], 1))
        for i, plot in enumerate(msg.plots):
            if plot.classification is not None:
                likelihood[i] = class_likelihood(plot.classification)
        area = math.pi * spec.max_range_m**2
        # the sector in the local frame: turned like every plot's bearing (θ = β + γ)
        sector = (0.0, math.tau) if msg.sector_deg is None else sector_span_rad(*msg.sector_deg, self.north_rotation_rad)
        return self._scan(
            msg, position, cov, likelihood, radial_velocity=rows[:, 2],
            rv_sigma=np.full(rows.shape[0], spec.radial_velocity_sigma_mps), los=los,
            coverage=((self.east_m, self.north_m), spec.max_range_m),
            detection_probability=spec.detection_probability,
            clutter_density=spec.false_alarms_per_scan / area, sector_rad=sector,
        )

    def _ground(self, msg: GroundEvent) -> Scan:
        spec: GroundSpec = self.spec
        site = np.array([[self.east_m, self.north_m]])
        if msg.bearing_deg is None:
            position, cov = site, np.eye(2)[None] * (spec.radius_m**2 / 4.0)
        else:
            known = msg.range_m is not None
            rng = np.array([msg.range_m if known else 2.0 * spec.radius_m / 3.0])
            rsig = np.array([spec.range_sigma_m if known else spec.radius_m / math.sqrt(18.0)])
            bearing = np.radians([msg.bearing_deg]) + self.north_rotation_rad
            position, cov, _ = polar_to_local(site[0], rng, bearing, rsig, np.radians([spec.bearing_sigma_deg]))
        # no coverage: a quiet ground sensor says nothing; a trigger counts against its false-trigger rate
        false_per_s = spec.false_triggers_per_hour / 3600.0
        return self._scan(msg, position, cov, class_likelihood(msg.classification)[None].copy(),
                          can_initiate=False, detection_probability=spec.detection_probability,
                          clutter_density=false_per_s / (math.pi * spec.radius_m**2))

    def _drone(self, msg: DroneReport, placement: DronePlacement) -> Scan:
        spec: DroneSpec = self.spec
        dets = msg.detections
        position = placement.detections_en
        sigma2 = (np.array([d.cep_m for d in dets], dtype=np.float64) * CEP_TO_SIGMA) ** 2
        cov = np.eye(2)[None] * sigma2[:, None, None]
        likelihood = np.array([class_likelihood(d.classification) for d in dets]).reshape(-1, N_CLASSES)
        coverage, pd, density = ((0.0, 0.0), 0.0), 0.0, 0.0
        if placement.platform_en is not None:
            coverage = (placement.platform_en, spec.footprint_radius_m)
            pd = spec.detection_probability
            density = _DRONE_FALSE_PER_REPORT / (math.pi * spec.footprint_radius_m**2)
        return self._scan(msg, position, cov, likelihood, coverage=coverage,
                          detection_probability=pd, clutter_density=density)
