"""Geofence tuning, the ``[geofence]`` table of a site file; the defaults serve."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

__all__ = ["GeofenceConfig"]

Fraction = Annotated[float, Meta(gt=0.0, lt=1.0)]


class GeofenceConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: a side change is decided once P(on the new side) exceeds this …
    inside_probability: Fraction = 0.95
    #: … and undone only once it falls below this (hysteresis band between)
    outside_probability: Fraction = 0.05
    #: warn when the predicted path reaches a border within this horizon
    approach_horizon_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 60.0
    #: true: only confirmed tracks (held by their last update, see ``Tracker.established``)
    #: raise alerts; a tentative track's alerts wait for its confirmation (dropped if it
    #: dies first).  false: every track's alerts go out at once — sooner, with the false
    #: alarms of clutter tracks
    confirmed_only: bool = True
