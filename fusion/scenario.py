"""Seeded ground truth: walkers, vehicles, small UAVs and animals moving over a site.

Each target follows a waypoint path from a start to a goal with class-typical
speed and agility; a share of them is drawn so that start and goal lie in
different countries (border crossers).  Motion is integrated on a 1 s grid:

    heading ← heading + clip(bearing_to_waypoint − heading, ±turn_rate) + N(0, σ_heading)
    speed   ← clip(speed + N(0, σ_speed), class range)

with occasional stops for walkers and animals.  Positions at any time are linear
interpolations of that grid, which is what the sensor models sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from geo.jurisdictions import Jurisdiction

__all__ = ["Truth", "TargetClass", "CLASS_MOTION", "make_scenario"]


@dataclass(frozen=True)
class TargetClass:
    name: str
    speed_mps: tuple[float, float]
    turn_rate_deg_s: float
    heading_noise_deg: float
    speed_noise_mps: float
    stop_probability_per_s: float
    share: float


CLASS_MOTION = {
    "person": TargetClass("person", (0.9, 1.8), 20.0, 3.0, 0.05, 0.004, 0.5),
    "vehicle": TargetClass("vehicle", (6.0, 16.0), 8.0, 1.0, 0.3, 0.002, 0.2),
    "animal": TargetClass("animal", (0.4, 2.5), 30.0, 12.0, 0.15, 0.01, 0.15),
    "uav": TargetClass("uav", (8.0, 18.0), 15.0, 2.0, 0.3, 0.0, 0.15),
}


@dataclass(frozen=True, eq=False)
class Truth:
    """Trajectories on a 1 s grid: ``position[i, k]`` at ``t0 + k``; NaN where not alive."""

    t0: float
    target_ids: tuple[str, ...]
    classes: tuple[str, ...]
    position: np.ndarray  # (targets, steps, 2)
    velocity: np.ndarray  # (targets, steps, 2)

    @property
    def steps(self) -> int:
        return self.position.shape[1]

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(alive mask, positions (n,2), velocities (n,2)) of all targets at time ``t``."""
        x = t - self.t0
        k = int(math.floor(x))
        if k < 0 or k >= self.steps - 1:
            n = len(self.target_ids)
            return np.zeros(n, bool), np.zeros((n, 2)), np.zeros((n, 2))
        w = x - k
        pos = (1 - w) * self.position[:, k] + w * self.position[:, k + 1]
        vel = self.velocity[:, k]
        alive = np.isfinite(pos[:, 0])
        return alive, np.nan_to_num(pos), np.nan_to_num(vel)


def _countries(jurisdictions: tuple[Jurisdiction, ...]):
    return [j for j in jurisdictions if j.kind == "country"]


def _country_of(countries, point) -> str | None:
    for c in countries:
        if shapely.contains_xy(c.polygon, point[0], point[1]):
            return c.id
    return None


def _path(rng: np.random.Generator, cls: TargetClass, start: np.ndarray, goal: np.ndarray,
          steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Integrate one target toward ``goal`` via a jittered midpoint; NaN after arrival."""
    mid = (start + goal) / 2 + rng.normal(0, 0.15 * np.linalg.norm(goal - start) + 1, 2)
    waypoints = [mid, goal]
    pos = np.full((steps, 2), np.nan)
    vel = np.full((steps, 2), np.nan)
    p = start.astype(float).copy()
    lo, hi = cls.speed_mps
    cruise = rng.uniform(lo, hi)
    speed = cruise
    d = waypoints[0] - p
    heading = math.atan2(d[0], d[1])
    stopped = 0
    for k in range(steps):
        target = waypoints[0]
        d = target - p
        if np.hypot(*d) < max(speed, 5.0):
            waypoints.pop(0)
            if not waypoints:
                break
            target = waypoints[0]
            d = target - p
        want = math.atan2(d[0], d[1])
        turn = (want - heading + math.pi) % (2 * math.pi) - math.pi
        max_turn = math.radians(cls.turn_rate_deg_s)
        heading += max(-max_turn, min(max_turn, turn)) + rng.normal(0, math.radians(cls.heading_noise_deg))
        if stopped > 0:
            stopped -= 1
            v = 0.0
        else:
            if rng.random() < cls.stop_probability_per_s:
                stopped = int(rng.integers(5, 40))
            speed = float(np.clip(speed + rng.normal(0, cls.speed_noise_mps) + 0.05 * (cruise - speed), lo, hi))
            v = speed
        velocity = v * np.array((math.sin(heading), math.cos(heading)))
        pos[k], vel[k] = p, velocity
        p = p + velocity
    return pos, vel


def make_scenario(
    jurisdictions: tuple[Jurisdiction, ...], area: tuple[float, float, float, float], duration_s: float,
    t0: float, n_targets: int, seed: int, crossing_share: float = 0.6, covered=None,
) -> Truth:
    """Draw ``n_targets`` targets inside ``area`` = (east_min, north_min, east_max, north_max).

    ``covered(point) -> bool``, when given, must hold at the start and the goal.
    """
    rng = np.random.default_rng(seed)
    steps = int(math.ceil(duration_s)) + 2
    countries = _countries(jurisdictions)
    names = list(CLASS_MOTION)
    shares = np.array([CLASS_MOTION[c].share for c in names])
    positions = np.full((n_targets, steps, 2), np.nan)
    velocities = np.full((n_targets, steps, 2), np.nan)
    classes = []
    e0, n0, e1, n1 = area
    for i in range(n_targets):
        cls = CLASS_MOTION[names[int(rng.choice(len(names), p=shares / shares.sum()))]]
        classes.append(cls.name)
        born = int(rng.uniform(0, 0.5 * duration_s))
        travel = np.mean(cls.speed_mps) * (steps - born) * rng.uniform(0.5, 0.9)
        crosser = rng.random() < crossing_share
        for _ in range(400):
            start = np.array((rng.uniform(e0, e1), rng.uniform(n0, n1)))
            angle = rng.uniform(0, 2 * math.pi)
            goal = start + travel * np.array((math.sin(angle), math.cos(angle)))
            if not (e0 <= goal[0] <= e1 and n0 <= goal[1] <= n1):
                continue
            if covered is not None and not (covered(start) and covered(goal)):
                continue
            a, b = _country_of(countries, start), _country_of(countries, goal)
            if a is not None and b is not None and (a != b) == crosser:
                break
        pos, vel = _path(rng, cls, start, goal, steps - born)
        positions[i, born:], velocities[i, born:] = pos, vel
    ids = tuple(f"tgt-{i}" for i in range(n_targets))
    return Truth(t0, ids, tuple(classes), positions, velocities)
