"""Scans without the wire: seeded tracking scenarios straight into :class:`~sensors.batch.Scan`.

For tracker tests and benchmarks where JSON and the frame are beside the point:
targets move with nearly-constant velocity (white acceleration noise σ_a) in a
square, or (:func:`manoeuvre_scenario`) alternate straight legs with sharp turns
and stops; a position sensor sees each with probability ``pd`` and Gaussian noise
``sigma_m`` and adds Poisson clutter uniform over the square.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.batch import N_CLASSES, Scan

__all__ = ["Scenario", "ncv_scenario", "manoeuvre_scenario", "position_scans", "make_scan"]


@dataclass(frozen=True, eq=False)
class Scenario:
    times: np.ndarray  # (steps,)
    position: np.ndarray  # (steps, targets, 2)
    velocity: np.ndarray  # (steps, targets, 2)
    half_width_m: float


def ncv_scenario(n_targets: int, duration_s: float, dt: float = 1.0, half_width_m: float = 10_000.0,
                 speed_mps: tuple[float, float] = (1.0, 15.0), accel_sigma: float = 0.05, seed: int = 0,
                 t0: float = 0.0) -> Scenario:
    rng = np.random.default_rng(seed)
    steps = int(round(duration_s / dt)) + 1
    pos = np.empty((steps, n_targets, 2))
    vel = np.empty((steps, n_targets, 2))
    pos[0] = rng.uniform(-0.8 * half_width_m, 0.8 * half_width_m, (n_targets, 2))
    heading = rng.uniform(0, 2 * np.pi, n_targets)
    speed = rng.uniform(*speed_mps, n_targets)
    vel[0] = np.column_stack((speed * np.sin(heading), speed * np.cos(heading)))
    for k in range(1, steps):
        accel = rng.normal(0, accel_sigma, (n_targets, 2))
        vel[k] = vel[k - 1] + accel * dt
        pos[k] = pos[k - 1] + vel[k - 1] * dt + 0.5 * accel * dt * dt
    return Scenario(t0 + np.arange(steps) * dt, pos, vel, half_width_m)


def manoeuvre_scenario(n_targets: int, duration_s: float, half_width_m: float = 5_000.0, speed_mps: float = 12.0,
                       seed: int = 0, substeps: int = 10) -> Scenario:
    """Targets that drive straight legs (10–25 s) between manoeuvres: a 90° turn
    at 10–20 °/s, or a stop (brake at 3 m/s², wait 4–10 s, pull away at 2 m/s²).

    Integrated at ``1/substeps`` s, sampled every second.
    """
    rng = np.random.default_rng(seed)
    steps = int(round(duration_s)) + 1
    h = 1.0 / substeps
    pos = np.empty((steps, n_targets, 2))
    vel = np.empty((steps, n_targets, 2))
    for n in range(n_targets):
        p = rng.uniform(-0.6 * half_width_m, 0.6 * half_width_m, 2)
        heading, speed = rng.uniform(0, 2 * np.pi), speed_mps
        plan: list[tuple[str, float, float]] = []  # (what, seconds, rate)
        for k in range(steps * substeps):
            if not plan:
                plan = [("straight", rng.uniform(10, 25), 0.0)]
                if rng.random() < 0.5:
                    rate = np.radians(rng.uniform(10, 20)) * rng.choice((-1.0, 1.0))
                    plan.append(("turn", abs(np.pi / 2 / rate), rate))
                else:
                    plan += [("brake", speed_mps / 3.0, -3.0), ("wait", rng.uniform(4, 10), 0.0),
                             ("pull", speed_mps / 2.0, 2.0)]
            if k % substeps == 0:
                pos[k // substeps, n] = p
                vel[k // substeps, n] = speed * np.sin(heading), speed * np.cos(heading)
            what, left, rate = plan[0]
            if what == "turn":
                heading += rate * h
            elif what in ("brake", "pull"):
                speed = float(np.clip(speed + rate * h, 0.0, speed_mps))
            p = p + h * speed * np.array([np.sin(heading), np.cos(heading)])
            plan[0] = (what, left - h, rate)
            if plan[0][1] <= 1e-9:
                plan.pop(0)
    return Scenario(np.arange(steps, dtype=float), pos, vel, half_width_m)


def make_scan(time: float, position: np.ndarray, covariance: np.ndarray, sensor_index: int = 0,
              coverage_center=(0.0, 0.0), coverage_radius_m: float = 0.0, pd: float = 0.9,
              clutter_density: float = 0.0, can_initiate: bool = True, likelihood: np.ndarray | None = None,
              coverage_sector_rad: tuple[float, float] = (0.0, 2.0 * np.pi)) -> Scan:
    n = position.shape[0]
    nan = np.full(n, np.nan)
    return Scan(
        sensor_id=f"synthetic-{sensor_index}", sensor_index=sensor_index, time=float(time), t=np.full(n, time),
        position=position, covariance=covariance, radial_velocity=nan, radial_velocity_sigma=nan,
        line_of_sight=np.zeros((n, 2)),
        class_likelihood=np.full((n, N_CLASSES), 1.0 / N_CLASSES) if likelihood is None else likelihood,
        can_initiate=np.full(n, can_initiate), coverage_center=coverage_center, coverage_radius_m=coverage_radius_m,
        detection_probability=pd, clutter_density=clutter_density, coverage_sector_rad=coverage_sector_rad,
    )


def position_scans(scenario: Scenario, pd: float = 0.9, sigma_m: float = 10.0, clutter_per_scan: float = 20.0,
                   seed: int = 1, sensor_index: int = 0, every: int = 1, covariance: np.ndarray | None = None) -> list[Scan]:
    """One scan per ``every`` time steps of a sensor covering the whole square.

    ``covariance`` (2×2) overrides the isotropic σ² I (noise is drawn from it).
    """
    rng = np.random.default_rng(seed)
    R = np.eye(2) * sigma_m**2 if covariance is None else np.asarray(covariance, float)
    chol = np.linalg.cholesky(R)
    w = scenario.half_width_m
    area = (2 * w) ** 2
    scans = []
    for k in range(0, len(scenario.times), every):
        seen = rng.random(scenario.position.shape[1]) < pd
        truth = scenario.position[k][seen]
        noisy = truth + rng.normal(0, 1, truth.shape) @ chol.T
        clutter = rng.uniform(-w, w, (rng.poisson(clutter_per_scan), 2))
        z = np.concatenate((noisy, clutter))[rng.permutation(len(noisy) + len(clutter))]
        scans.append(make_scan(scenario.times[k], z, np.repeat(R[None], len(z), axis=0), sensor_index,
                               coverage_radius_m=2 * w, pd=pd, clutter_density=clutter_per_scan / area))
    return scans
