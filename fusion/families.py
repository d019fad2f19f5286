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
    """``n`` targets that cross the border once, north- or southbound at even odds, at a
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


def _group(rng: np.random.Generator, size: int, start: np.ndarray, heading_rad: float, speed_mps: float,
           duration_s: float, spacing_m: tuple[float, float] = (10.0, 20.0), wobble_m: float = 2.0,
           wobble_s: float = 20.0) -> _Truth:
    """``size`` walkers moving together: a leader's path plus fixed offsets 10–20 m apart across
    the direction of travel (rotated with the heading), each wobbling about its place
    (Ornstein–Uhlenbeck, σ ``wobble_m``, time constant ``wobble_s``).  Velocities by differences."""
    path = _drive(rng, start[None], np.array([heading_rad]), np.array([speed_mps]), duration_s, PERSON,
                  jitter_rad_per_sqrt_s=0.02)
    lead, lead_v = path.position[:, 0], path.velocity[:, 0]
    across = np.cumsum(np.concatenate(([0.0], rng.uniform(*spacing_m, size - 1))))
    offsets = np.column_stack((across - across.mean(), rng.uniform(-5.0, 5.0, size)))  # (across, along)
    h = 1.0 / SUBSTEPS
    steps = lead.shape[0]
    wobble = np.zeros((steps, size, 2))
    decay, kick = math.exp(-h / wobble_s), wobble_m * math.sqrt(1.0 - math.exp(-2.0 * h / wobble_s))
    for k in range(1, steps):
        wobble[k] = decay * wobble[k - 1] + rng.normal(0.0, kick, (size, 2))
    forward = lead_v / np.linalg.norm(lead_v, axis=1, keepdims=True)
    right = np.column_stack((forward[:, 1], -forward[:, 0]))
    position = (lead[:, None] + offsets[None, :, 0:1] * right[:, None] + offsets[None, :, 1:2] * forward[:, None]
                + wobble)
    velocity = np.gradient(position, h, axis=0)
    return _Truth(position, velocity, np.full(size, PERSON))


def groups(seed: int) -> Family:
    """A group of 5 walkers 10–20 m apart crossing the border together 6 km from a radar (σr 15 m,
    σβ 0.3°: 31 m across the beam there, more than their spacing), with 8 other targets; 200 s."""
    rng = np.random.default_rng([3, seed])
    duration = 200.0
    speed = rng.uniform(1.2, 1.6)
    heading = rng.uniform(-0.2, 0.2)
    start = np.array((rng.uniform(-300, 300), -speed * rng.uniform(80, 120) * math.cos(heading)))
    truth = _Truth.join(
        _group(rng, 5, start, heading, speed, duration),
        _crossers(rng, 4, (-3000, 3000), (1.0, 2.0), duration, PERSON, jitter_rad_per_sqrt_s=0.05),
        _wanderers(rng, 4, (0.0, -1000.0), 2500.0, (4.0, 12.0), duration, VEHICLE,
                   turn_rate_rad_s=(0.05, 0.15), straight_s=(20.0, 60.0)),
    )
    radar = _radar(rng, truth, _every_second(duration), 0, "radar-0", (-2000.0, -5650.0), 9000.0, 0.9, 5.0)
    return _family("groups", seed, truth, [radar])


def _from_scenario(scenario, target_class: int) -> _Truth:
    """A 1 Hz :class:`fusion.synthetic.Scenario` on the 10 Hz grid (linear in between)."""
    fine = np.arange((len(scenario.times) - 1) * SUBSTEPS + 1) / SUBSTEPS
    def interp(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(len(scenario.times), -1)
        return np.stack([np.interp(fine, scenario.times, flat[:, j]) for j in range(flat.shape[1])], 1).reshape(
            (fine.size,) + a.shape[1:])
    return _Truth(interp(scenario.position), interp(scenario.velocity),
                  np.full(scenario.position.shape[1], target_class))


def turns_stops(seed: int) -> Family:
    """Cars (12 m/s) and walkers (1.5 m/s) on straight legs between 90° turns (10–20 °/s) and stops
    (:func:`fusion.synthetic.manoeuvre_scenario`), one radar at the centre (range 8 km, 10 false
    alarms per scan); 180 s."""
    duration = 180.0
    truth = _Truth.join(
        _from_scenario(manoeuvre_scenario(16, duration, half_width_m=3000.0, speed_mps=12.0, seed=4000 + seed),
                       VEHICLE),
        _from_scenario(manoeuvre_scenario(8, duration, half_width_m=1500.0, speed_mps=1.5, seed=5000 + seed),
                       PERSON))
    rng = np.random.default_rng([4, seed])
    radar = _radar(rng, truth, _every_second(duration), 0, "radar-0", (0.0, -500.0), 8000.0, 0.9, 10.0)
    return _family("turns_stops", seed, truth, [radar])


def coverage_gaps(seed: int) -> Family:
    """Two radars (range 2 km) 4.3 km apart leave a gap at east ≈ 0 where 3 ground sensors (ρ 50 m)
    watch the south bank and a drone orbits over the north bank; 10 walkers pass from radar cover
    through the gap past a ground sensor and across the border, 5 cars cross the gap, 15 targets
    move under the radars and 5 only the drone sees; 240 s."""
    rng = np.random.default_rng([5, seed])
    duration = 240.0
    ugs_sites = [(-100.0, -60.0), (0.0, -60.0), (100.0, -60.0)]
    n_walkers = 10
    site = np.array([ugs_sites[i] for i in rng.integers(0, len(ugs_sites), n_walkers)])
    side = rng.choice((-1.0, 1.0), n_walkers)  # −1: from the west radar heading north-east
    heading = -side * rng.uniform(np.radians(40), np.radians(60), n_walkers)
    speed = rng.uniform(1.2, 1.8, n_walkers)
    lead = speed * rng.uniform(120, 180, n_walkers)  # seconds to reach the ground sensor
    start = site + rng.uniform(-20, 20, (n_walkers, 2)) - lead[:, None] * np.column_stack((np.sin(heading),
                                                                                           np.cos(heading)))
    car_west = rng.random(5) < 0.5
    car_start = np.column_stack((np.where(car_west, -1000.0, 1000.0), rng.uniform(-500, -200, 5)))
    car_heading = np.where(car_west, 1.0, -1.0) * rng.uniform(np.radians(55), np.radians(75), 5)
    truth = _Truth.join(
        _drive(rng, start, heading, speed, duration, PERSON, jitter_rad_per_sqrt_s=0.01),
        _drive(rng, car_start, car_heading, rng.uniform(6.0, 9.0, 5), duration, VEHICLE),
        _wanderers(rng, 8, (-2150.0, -300.0), 1400.0, (1.0, 8.0), duration, PERSON, jitter_rad_per_sqrt_s=0.05),
        _wanderers(rng, 7, (2150.0, -300.0), 1400.0, (1.0, 8.0), duration, VEHICLE, jitter_rad_per_sqrt_s=0.05),
        _wanderers(rng, 5, (0.0, 400.0), 300.0, (0.5, 1.5), duration, PERSON, jitter_rad_per_sqrt_s=0.1),
    )
    sensed = [
        _radar(rng, truth, _every_second(duration, 0.0), 0, "radar-w", (-2150.0, -300.0), 2000.0, 0.9, 5.0),
        _radar(rng, truth, _every_second(duration, 0.5), 1, "radar-e", (2150.0, -300.0), 2000.0, 0.9, 5.0),
        *(_ground(rng, truth, _every_second(duration, 0.3), 2 + i, f"ugs-{i}", s) for i, s in enumerate(ugs_sites)),
        _drone(rng, truth, _every_second(duration, 0.7), 2 + len(ugs_sites), "drone-0", (0.0, 350.0), 300.0,
               footprint_radius_m=400.0),
    ]
    return _family("coverage_gaps", seed, truth, sensed)


def mixed_classes(seed: int) -> Family:
    """Walkers (1–2 m/s), cars (15–25 m/s, road bends), UAVs (12–20 m/s, turning 5–15 °/s) and
    animals under one radar (range 9 km, 10 false alarms per scan) with a drone over the border
    that classifies what it sees; 180 s."""
    rng = np.random.default_rng([6, seed])
    duration = 180.0
    truth = _Truth.join(
        _crossers(rng, 6, (-2500, 2500), (1.0, 2.0), duration, PERSON, jitter_rad_per_sqrt_s=0.05),
        _wanderers(rng, 6, (0.0, -500.0), 2000.0, (1.0, 2.0), duration, PERSON, jitter_rad_per_sqrt_s=0.05),
        _crossers(rng, 4, (-3000, 3000), (15.0, 25.0), duration, VEHICLE, cross_at=(0.1, 0.4),
                  turn_rate_rad_s=(0.02, 0.06), straight_s=(20.0, 60.0), turn_s=(5.0, 15.0)),
        _wanderers(rng, 4, (0.0, -1500.0), 2000.0, (15.0, 25.0), duration, VEHICLE,
                   turn_rate_rad_s=(0.03, 0.1), straight_s=(15.0, 40.0), turn_s=(5.0, 15.0)),
        _wanderers(rng, 6, (0.0, -1000.0), 2000.0, (12.0, 20.0), duration, UAV,
                   turn_rate_rad_s=(np.radians(5), np.radians(15)), straight_s=(5.0, 20.0), turn_s=(3.0, 10.0)),
        _wanderers(rng, 4, (0.0, -500.0), 2000.0, (0.5, 3.0), duration, ANIMAL, jitter_rad_per_sqrt_s=0.15),
    )
    sensed = [
        _radar(rng, truth, _every_second(duration), 0, "radar-0", (0.0, -4000.0), 9000.0, 0.9, 10.0),
        _drone(rng, truth, _every_second(duration, 0.5), 1, "drone-0", (0.0, 0.0), 800.0, footprint_radius_m=600.0),
    ]
    return _family("mixed_classes", seed, truth, sensed)


FAMILIES: dict[str, Callable[[int], Family]] = {
    "appearing_vanishing": appearing_vanishing,
    "dense_clutter": dense_clutter,
    "groups": groups,
    "turns_stops": turns_stops,
    "coverage_gaps": coverage_gaps,
    "mixed_classes": mixed_classes,
}
