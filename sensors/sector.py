"""Radar sectors: the optional ``sector_deg: [from_deg, to_deg]`` of a radar message (interface §2.1).

Azimuths are the radar's: degrees clockwise from true north at the radar, as ``azimuth_deg``
of a plot.  A sector runs clockwise from ``from_deg`` to ``to_deg``, so it may wrap
through north ([350, 10] is the 20° about north).  It is kept as (start, width)::

    start = from_deg            width = (to_deg − from_deg) mod 360

with the whole circle written [0, 360] (or [360, 0]): the only pair whose width is 0
mod 360 and whose ends differ; two equal ends would be an empty sector and are refused.
An azimuth β is inside when its clockwise offset from the start is within the width,
``(β − start) mod 360 ≤ width`` (both ends included).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FULL_CIRCLE_DEG", "sector_span_deg", "sector_problem", "in_sector_deg", "sector_split_deg", "sector_span_rad"]

FULL_CIRCLE_DEG = 360.0
_VALID = ("expected [from_deg, to_deg]: two different azimuths in [0, 360], clockwise from north "
          "(e.g. [350, 10] wraps through north; [0, 360] is the whole coverage)")


def sector_span_deg(from_deg: float, to_deg: float) -> tuple[float, float]:
    """(start, width) in degrees of the clockwise sector ``from_deg`` → ``to_deg``; width 360 for the whole circle."""
    width = (to_deg - from_deg) % FULL_CIRCLE_DEG
    if width == 0.0 and from_deg != to_deg:
        width = FULL_CIRCLE_DEG
    return from_deg % FULL_CIRCLE_DEG, width


def sector_problem(sector: tuple[float, float] | None) -> str | None:
    """Why ``sector_deg`` (already decoded as two finite numbers in [0, 360]) cannot be used, or None."""
    if sector is None:
        return None
    from_deg, to_deg = sector
    if from_deg == to_deg:
        return f"sector_deg: [{from_deg:g}, {to_deg:g}] is an empty sector; {_VALID}"
    return None


def in_sector_deg(azimuth_deg: np.ndarray, start_deg: float, width_deg: float) -> np.ndarray:
    """Whether each azimuth lies in the sector (start, width) of :func:`sector_span_deg`, ends included."""
    azimuth_deg = np.asarray(azimuth_deg, dtype=np.float64)
    if width_deg >= FULL_CIRCLE_DEG:
        return np.ones(azimuth_deg.shape, bool)
    return (azimuth_deg - start_deg) % FULL_CIRCLE_DEG <= width_deg


def sector_split_deg(parts: int) -> list[tuple[float, float]]:
    """``parts`` equal sectors [from_deg, to_deg] covering the circle from north, clockwise; one part: [0, 360]."""
    if parts < 1:
        raise ValueError(f"parts: expected at least 1 sector, got {parts!r}")
    step = FULL_CIRCLE_DEG / parts
    return [(k * step, FULL_CIRCLE_DEG if k == parts - 1 else (k + 1) * step) for k in range(parts)]


def sector_span_rad(from_deg: float, to_deg: float, rotation_rad: float = 0.0) -> tuple[float, float]:
    """(start, width) in radians, the start turned by ``rotation_rad`` (the radar's true north in the
    local frame, as a plot's bearing θ = β + γ); width 2π for the whole circle."""
    start, width = sector_span_deg(from_deg, to_deg)
    return (math.radians(start) + rotation_rad) % math.tau, math.radians(width)
