"""Seeded scenario families for the accuracy suite: truth and time-ordered :class:`~sensors.batch.Scan` s.

Each family is a function ``(seed) -> Family``.  Nobody tuned the tracker on them:
they are meant to look like what a site produces, with the sensors' own
conventions from :mod:`sensors.normalize`:

* **radar** — a polar plot ``(r, β)`` with noise ``(σ_r, σ_β)`` about the site,
  converted to the local frame with the first-order covariance
  ``R = J diag(σ_r², σ_β²) Jᵀ`` (:func:`sensors.normalize.polar_to_local`), a radial
  velocity ``ṙ = uᵀv + N(0, σ_ṙ²)`` along the line of sight ``u``, no class (uniform
  likelihood).  Detection with probability ``Pd`` inside ``max_range_m``; Poisson
  false alarms (``λ`` per scan) uniform over the coverage disc, so the scan's
  ``clutter_density = λ / (π R²)``.
* **ground sensor** (UGS) — a point sensor of radius ρ: an event while a target is
  within ρ (probability ``Pd`` per second), placed at the sensor with ``R = (ρ²/4) I``
  (uniform over the disc), a class from its type (seismic: person vs vehicle), and
  Poisson false events (animals, wind).  As in ``normalize``: coverage radius 0 (no
  statement about absent targets) and ``can_initiate = False``; the scan still
  carries its honest ``Pd`` and false-event density ``λ / (π ρ²)``.
* **drone** — a camera footprint of radius ``F`` around the platform on its orbit;
  geolocations with ``σ = CEP / 1.1774``, a class (0.8 on the true class), ``Pd``
  inside the footprint and 0.05 false detections per report
  (``clutter_density = 0.05 / (π F²)``).
* **position sensor** (the issue's independent case) — isotropic σ over a square
  with Poisson clutter uniform over it.

Truth is integrated at 10 Hz (sensors report at their own phases within each
second) and kept at every integer second; a target that has not appeared yet or
has vanished is NaN.  The border is the line north = 0 (country A south, B north).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fusion.synthetic import make_scan, manoeuvre_scenario
from sensors.batch import N_CLASSES, Scan
from sensors.normalize import CEP_TO_SIGMA, class_likelihood, polar_to_local
from sensors.schema import CLASSES, Classification

__all__ = ["Family", "SensorInfo", "FAMILIES", "dense_clutter", "appearing_vanishing", "groups", "turns_stops",
           "coverage_gaps", "mixed_classes", "BORDER_NORTH_M"]

BORDER_NORTH_M = 0.0
SUBSTEPS = 10  # truth integration steps per second
PERSON, VEHICLE, ANIMAL, UAV, UNKNOWN = range(N_CLASSES)
_UNIFORM = np.full(N_CLASSES, 1.0 / N_CLASSES)


@dataclass(frozen=True)
class SensorInfo:
    """What a sensor is and where it looks (for reports and plots; the scans carry the same numbers)."""

    sensor_id: str
    kind: str  # "radar" | "ground" | "drone" | "position"
    position_m: tuple[float, float]  # site; a drone's orbit centre
    coverage_radius_m: float
    detection_probability: float
    false_alarms_per_scan: float
    sigma_m: str  # human-readable noise, e.g. "σr 15 m, σβ 0.3°"


@dataclass(frozen=True, eq=False)
class Family:
    """One seeded scenario: truth at each integer second and the scans, in time order."""

    name: str
    seed: int
    times: np.ndarray  # (steps,) s, 0, 1, 2, ...
    position: np.ndarray  # (steps, targets, 2) east, north in m; NaN while absent
    velocity: np.ndarray  # (steps, targets, 2) m/s; NaN while absent
    target_id: tuple[str, ...]
    target_class: np.ndarray  # (targets,) index into sensors.schema.CLASSES
    scans: list[Scan]
    sensors: tuple[SensorInfo, ...]
    border_north_m: float = BORDER_NORTH_M

    @property
    def n_sensors(self) -> int:
        return len(self.sensors)

    @property
    def duration_s(self) -> float:
        return float(self.times[-1])

    def present(self, k: int) -> np.ndarray:
        """Which targets exist at step ``k``."""
        return np.isfinite(self.position[k, :, 0])


# -- truth ---------------------------------------------------------------------------------------

@dataclass
class _Truth:
    """Targets at 10 Hz: positions and velocities (NaN while absent), class per target."""

    position: np.ndarray  # (fine steps, n, 2)
    velocity: np.ndarray
    target_class: np.ndarray

    @property
    def n(self) -> int:
        return self.position.shape[1]

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        k = int(round(t * SUBSTEPS))
        return self.position[k], self.velocity[k]

    @staticmethod
    def join(*parts: "_Truth") -> "_Truth":
        return _Truth(np.concatenate([p.position for p in parts], axis=1),
                      np.concatenate([p.velocity for p in parts], axis=1),
                      np.concatenate([p.target_class for p in parts]))


def _drive(rng: np.random.Generator, start: np.ndarray, heading_rad: np.ndarray, speed_mps: np.ndarray,
           duration_s: float, target_class: int | np.ndarray, jitter_rad_per_sqrt_s: float = 0.03,
           turn_rate_rad_s: tuple[float, float] = (0.0, 0.0), straight_s: tuple[float, float] = (10.0, 30.0),
           turn_s: tuple[float, float] = (4.0, 12.0)) -> _Truth:
    """Targets driving straight legs with a heading random walk (σ ``jitter`` per √s), and,
    if ``turn_rate_rad_s`` is non-zero, turns at a rate drawn from it for ``turn_s`` seconds
    between legs of ``straight_s`` seconds (coordinated turns, speed kept)."""
    n, h = start.shape[0], 1.0 / SUBSTEPS
    steps = int(round(duration_s * SUBSTEPS)) + 1
    pos, vel = np.empty((steps, n, 2)), np.empty((steps, n, 2))
    p, heading, speed = start.astype(float).copy(), heading_rad.astype(float).copy(), speed_mps.astype(float)
    turning = np.zeros(n, bool)
    left = rng.uniform(*straight_s, n)
    rate = np.zeros(n)
    manoeuvres = turn_rate_rad_s[1] > 0
    for k in range(steps):
        v = speed[:, None] * np.column_stack((np.sin(heading), np.cos(heading)))
        pos[k], vel[k] = p, v
        p = p + h * v
        heading = heading + rate * h + rng.normal(0.0, jitter_rad_per_sqrt_s * math.sqrt(h), n)
        if manoeuvres:
            left -= h
            flip = left <= 0
            if flip.any():
                starts = flip & ~turning
                rate[starts] = rng.uniform(*turn_rate_rad_s, starts.sum()) * rng.choice((-1.0, 1.0), starts.sum())
                rate[flip & turning] = 0.0
                turning[flip] = ~turning[flip]
                left[flip] = np.where(turning[flip], rng.uniform(*turn_s, flip.sum()), rng.uniform(*straight_s, flip.sum()))
    return _Truth(pos, vel, np.broadcast_to(np.asarray(target_class), (n,)).astype(np.int64))


def _crossers(rng: np.random.Generator, n: int, east_m: tuple[float, float], speed_mps: tuple[float, float],
              duration_s: float, target_class: int, cross_at: tuple[float, float] = (0.25, 0.7),
              spread_rad: float = 0.35, **drive) -> _Truth:
    """``n`` targets that cross the border once, half northbound and half southbound, at a
    time drawn from ``cross_at`` × duration."""
    speed = rng.uniform(*speed_mps, n)
    north = rng.random(n) < 0.5
    heading = np.where(north, 0.0, np.pi) + rng.uniform(-spread_rad, spread_rad, n)
    distance = speed * rng.uniform(*cross_at, n) * duration_s * np.abs(np.cos(heading))
    start = np.column_stack((rng.uniform(*east_m, n), np.where(north, -distance, distance)))
    return _drive(rng, start, heading, speed, duration_s, target_class, **drive)


def _wanderers(rng: np.random.Generator, n: int, centre: tuple[float, float], radius_m: float,
               speed_mps: tuple[float, float], duration_s: float, target_class: int, **drive) -> _Truth:
    """``n`` targets starting uniformly in a disc, random heading."""
    r = radius_m * np.sqrt(rng.random(n))
    a = rng.uniform(0, 2 * np.pi, n)
    start = np.asarray(centre) + np.column_stack((r * np.sin(a), r * np.cos(a)))
    return _drive(rng, start, rng.uniform(0, 2 * np.pi, n), rng.uniform(*speed_mps, n), duration_s, target_class,
                  **drive)


def _lifetimes(rng: np.random.Generator, truth: _Truth, late_fraction: float, early_fraction: float,
               appear_s: tuple[float, float], vanish_s: tuple[float, float]) -> None:
    """Blank (NaN) targets before they appear and after they vanish, in place."""
    n = truth.n
    late = rng.random(n) < late_fraction
    early = rng.random(n) < early_fraction
    born = np.where(late, rng.uniform(*appear_s, n), 0.0)
    gone = np.where(early, np.maximum(rng.uniform(*vanish_s, n), born + 20.0), np.inf)  # each lives ≥ 20 s
    t = np.arange(truth.position.shape[0]) / SUBSTEPS
    absent = (t[:, None] < born[None]) | (t[:, None] > gone[None])
    truth.position[absent] = np.nan
    truth.velocity[absent] = np.nan


# -- sensors ---------------------------------------------------------------------------------------

def _inside(position: np.ndarray, centre, radius_m: float) -> np.ndarray:
    d = position - np.asarray(centre)
    with np.errstate(invalid="ignore"):
        return np.hypot(d[:, 0], d[:, 1]) <= radius_m  # NaN (absent) → False


def _disc(rng: np.random.Generator, count: int, centre, radius_m: float) -> np.ndarray:
    r = radius_m * np.sqrt(rng.random(count))
    a = rng.uniform(0, 2 * np.pi, count)
    return np.asarray(centre) + np.column_stack((r * np.sin(a), r * np.cos(a)))


def _radar(rng: np.random.Generator, truth: _Truth, times: np.ndarray, index: int, sensor_id: str,
           site: tuple[float, float], max_range_m: float, pd: float, false_per_scan: float,
           range_sigma_m: float = 15.0, azimuth_sigma_deg: float = 0.3,
           radial_sigma_mps: float = 0.5) -> tuple[list[Scan], SensorInfo]:
    """Scans of a ground-surveillance radar at ``times`` (see the module docstring)."""
    origin = np.asarray(site, float)
    area = math.pi * max_range_m**2
    scans = []
    for t in times:
        p, v = truth.at(t)
        seen = _inside(p, origin, max_range_m) & (rng.random(truth.n) < pd)
        d = p[seen] - origin
        r_true, b_true = np.hypot(d[:, 0], d[:, 1]), np.arctan2(d[:, 0], d[:, 1])
        clutter = _disc(rng, rng.poisson(false_per_scan), origin, max_range_m) - origin
        r = np.concatenate((r_true + rng.normal(0, range_sigma_m, r_true.size), np.hypot(clutter[:, 0], clutter[:, 1])))
        b = np.concatenate((b_true + rng.normal(0, math.radians(azimuth_sigma_deg), b_true.size),
                            np.arctan2(clutter[:, 0], clutter[:, 1])))
        r = np.abs(r)
        z, R, los = polar_to_local(origin, r, b, np.full(r.size, range_sigma_m),
                                   np.full(r.size, math.radians(azimuth_sigma_deg)))
        radial = np.concatenate((np.einsum("ij,ij->i", los[:r_true.size], v[seen]),
                                 rng.uniform(-3.0, 3.0, clutter.shape[0])))  # clutter: wind-blown vegetation
        radial = radial + rng.normal(0, radial_sigma_mps, radial.size)
        order = rng.permutation(r.size)
        scan = make_scan(t, z[order], R[order], index, coverage_center=(float(site[0]), float(site[1])),
                         coverage_radius_m=max_range_m, pd=pd, clutter_density=false_per_scan / area)
        scans.append(dataclasses.replace(scan, sensor_id=sensor_id, radial_velocity=radial[order],
                                         radial_velocity_sigma=np.full(r.size, radial_sigma_mps),
                                         line_of_sight=los[order]))
    info = SensorInfo(sensor_id, "radar", (float(site[0]), float(site[1])), max_range_m, pd, false_per_scan,
                      f"σr {range_sigma_m:g} m, σβ {azimuth_sigma_deg:g}°")
    return scans, info


def _position_sensor(rng: np.random.Generator, truth: _Truth, times: np.ndarray, half_width_m: float,
                     sigma_m: float, pd: float, false_per_scan: float) -> tuple[list[Scan], SensorInfo]:
    """An isotropic position sensor over the square ±``half_width_m`` with clutter uniform over it."""
    area = (2 * half_width_m) ** 2
    scans = []
    for t in times:
        p, _ = truth.at(t)
        seen = np.isfinite(p[:, 0]) & (rng.random(truth.n) < pd)
        noisy = p[seen] + rng.normal(0, sigma_m, (seen.sum(), 2))
        clutter = rng.uniform(-half_width_m, half_width_m, (rng.poisson(false_per_scan), 2))
        z = np.concatenate((noisy, clutter))[rng.permutation(len(noisy) + len(clutter))]
        scans.append(dataclasses.replace(
            make_scan(t, z, np.tile(np.eye(2) * sigma_m**2, (len(z), 1, 1)), 0,
                      coverage_radius_m=half_width_m * math.sqrt(2.0), pd=pd,
                      clutter_density=false_per_scan / area), sensor_id="sensor-0"))
    return scans, SensorInfo("sensor-0", "position", (0.0, 0.0), half_width_m * math.sqrt(2.0), pd, false_per_scan,
                             f"σ {sigma_m:g} m")


def _likelihood(probabilities: dict[str, float]) -> np.ndarray:
    return class_likelihood(Classification(**probabilities))


#: what a seismic ground sensor says about each true class
_UGS_SAYS = {PERSON: {"person": 0.6, "vehicle": 0.1}, VEHICLE: {"person": 0.1, "vehicle": 0.7},
             ANIMAL: {"person": 0.3, "animal": 0.3}, UAV: {}, UNKNOWN: {}}


def _ground(rng: np.random.Generator, truth: _Truth, times: np.ndarray, index: int, sensor_id: str,
            site: tuple[float, float], radius_m: float = 50.0, pd: float = 0.9,
            false_per_s: float = 0.005) -> tuple[list[Scan], SensorInfo]:
    """Events of a ground sensor: at most one per second (the nearest target inside ρ), sent
    only when there is one; an absent event says nothing (coverage radius 0)."""
    scans = []
    density = false_per_s / (math.pi * radius_m**2)
    for t in times:
        p, _ = truth.at(t)
        inside = np.flatnonzero(_inside(p, site, radius_m) & (rng.random(truth.n) < pd))
        rows = [class_likelihood(Classification(**_UGS_SAYS[int(truth.target_class[i])])) for i in inside[:1]]
        if not rows and rng.random() < false_per_s:
            rows = [_likelihood({"animal": 0.4})]
        if not rows:
            continue
        z = np.array([site], float)
        scan = make_scan(t, z, np.eye(2)[None] * (radius_m**2 / 4.0), index, coverage_radius_m=0.0, pd=pd,
                         clutter_density=density, can_initiate=False, likelihood=np.array(rows))
        scans.append(dataclasses.replace(scan, sensor_id=sensor_id))
    return scans, SensorInfo(sensor_id, "ground", (float(site[0]), float(site[1])), 0.0, pd, false_per_s,
                             f"ρ {radius_m:g} m (R = ρ²/4 I)")


_DRONE_FALSE_PER_REPORT = 0.05


def _drone(rng: np.random.Generator, truth: _Truth, times: np.ndarray, index: int, sensor_id: str,
           orbit_centre: tuple[float, float], orbit_radius_m: float, footprint_radius_m: float = 500.0,
           speed_mps: float = 15.0, pd: float = 0.95, cep_m: float = 8.0,
           true_class_probability: float = 0.8) -> tuple[list[Scan], SensorInfo]:
    """Reports of a drone orbiting ``orbit_centre``: detections inside its camera footprint."""
    sigma = cep_m * CEP_TO_SIGMA
    omega = speed_mps / orbit_radius_m
    density = _DRONE_FALSE_PER_REPORT / (math.pi * footprint_radius_m**2)
    scans = []
    for t in times:
        platform = np.asarray(orbit_centre) + orbit_radius_m * np.array((math.sin(omega * t), math.cos(omega * t)))
        p, _ = truth.at(t)
        seen = np.flatnonzero(_inside(p, platform, footprint_radius_m) & (rng.random(truth.n) < pd))
        false = _disc(rng, rng.poisson(_DRONE_FALSE_PER_REPORT), platform, footprint_radius_m)
        z = np.concatenate((p[seen] + rng.normal(0, sigma, (seen.size, 2)), false))
        rows = [_likelihood({CLASSES[int(truth.target_class[i])]: true_class_probability}) for i in seen]
        rows += [_UNIFORM] * len(false)
        scan = make_scan(t, z, np.tile(np.eye(2) * sigma**2, (len(z), 1, 1)), index,
                         coverage_center=(float(platform[0]), float(platform[1])),
                         coverage_radius_m=footprint_radius_m, pd=pd, clutter_density=density,
                         likelihood=np.array(rows).reshape(-1, N_CLASSES))
        scans.append(dataclasses.replace(scan, sensor_id=sensor_id))
    return scans, SensorInfo(sensor_id, "drone", (float(orbit_centre[0]), float(orbit_centre[1])),
                             footprint_radius_m, pd, _DRONE_FALSE_PER_REPORT, f"CEP {cep_m:g} m")


def _family(name: str, seed: int, truth: _Truth, sensed: list[tuple[list[Scan], SensorInfo]]) -> Family:
    steps = (truth.position.shape[0] - 1) // SUBSTEPS + 1
    scans = sorted((s for scans, _ in sensed for s in scans), key=lambda s: (s.time, s.sensor_index))
    return Family(name=name, seed=seed, times=np.arange(steps, dtype=float),
                  position=truth.position[::SUBSTEPS][:steps].copy(), velocity=truth.velocity[::SUBSTEPS][:steps].copy(),
                  target_id=tuple(f"{name[:3]}-{i:03d}" for i in range(truth.n)),
                  target_class=truth.target_class.copy(), scans=scans, sensors=tuple(info for _, info in sensed))


def _every_second(duration_s: float, phase_s: float = 0.0) -> np.ndarray:
    """Scan times phase, phase + 1, ... up to the duration (on the 10 Hz truth grid)."""
    return np.round(np.arange(phase_s, duration_s + 1e-9, 1.0) * SUBSTEPS) / SUBSTEPS


# -- the families -----------------------------------------------------------------------------------

def dense_clutter(seed: int) -> Family:
    """One radar (range 5 km, σr 15 m, σβ 0.3°, Pd 0.9) with 60 false alarms per scan; 40 targets
    (walkers and cars, 16 of them crossing the border) for 150 s."""
    rng = np.random.default_rng([1, seed])
    duration = 150.0
    truth = _Truth.join(
        _crossers(rng, 10, (-2000, 2000), (1.0, 2.0), duration, PERSON, jitter_rad_per_sqrt_s=0.05),
        _crossers(rng, 6, (-2000, 2000), (5.0, 12.0), duration, VEHICLE),
        _wanderers(rng, 14, (0.0, -1500.0), 2500.0, (0.8, 2.0), duration, PERSON, jitter_rad_per_sqrt_s=0.05),
        _wanderers(rng, 10, (0.0, -1500.0), 2000.0, (4.0, 12.0), duration, VEHICLE,
                   turn_rate_rad_s=(0.05, 0.15), straight_s=(20.0, 60.0)),
    )
    radar = _radar(rng, truth, _every_second(duration), 0, "radar-0", (0.0, -1500.0), 5000.0, 0.9, 60.0)
    return _family("dense_clutter", seed, truth, [radar])


def appearing_vanishing(seed: int, n_targets: int = 100) -> Family:
    """The issue's independent case: ``n_targets`` nearly-constant-velocity targets (1–15 m/s) in
    20 km × 20 km, one position sensor at 1 Hz (σ 10 m, Pd 0.9, 20 false alarms per scan); 30 %
    appear late (10–80 s), 30 % vanish early (40–110 s); 120 s."""
    rng = np.random.default_rng([2, seed])
    duration, half_width = 120.0, 10_000.0
    n_cross = n_targets // 5
    truth = _Truth.join(
        _crossers(rng, n_cross, (-8000, 8000), (1.0, 15.0), duration, UNKNOWN, jitter_rad_per_sqrt_s=0.01),
        _wanderers(rng, n_targets - n_cross, (0.0, 0.0), 0.8 * half_width, (1.0, 15.0), duration, UNKNOWN,
                   jitter_rad_per_sqrt_s=0.01))
    _lifetimes(rng, truth, 0.3, 0.3, (10.0, 80.0), (40.0, 110.0))
    sensor = _position_sensor(rng, truth, _every_second(duration), half_width, 10.0, 0.9, 20.0)
    return _family("appearing_vanishing", seed, truth, [sensor])


FAMILIES: dict[str, Callable[[int], Family]] = {
    "appearing_vanishing": appearing_vanishing,
    "dense_clutter": dense_clutter,
}
