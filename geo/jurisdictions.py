"""Jurisdiction polygons (interface §5): read once, checked, projected to the local frame.

The GeoJSON is RFC 7946 (lon, lat).  Each feature becomes a frozen
:class:`Jurisdiction` whose polygon is in the site's east/north metres, so all
geometry afterwards is planar and exact to well under a metre.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np
import shapely
from msgspec import Meta, Struct
from shapely.geometry.base import BaseGeometry

from geo.frame import LocalFrame

__all__ = ["Jurisdiction", "JurisdictionError", "load_jurisdictions", "ALERT_TYPES"]

ALERT_TYPES = ("border_crossing", "zone_entry", "zone_exit", "dwell", "approach")
AgencyId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class JurisdictionError(ValueError):
    """A jurisdiction file that cannot be used; the message names file and field."""


class _Properties(Struct, frozen=True):
    id: Annotated[str, Meta(min_length=1, max_length=128)]
    name: str
    kind: Literal["country", "sector", "zone"]
    agency: AgencyId
    share_with: list[AgencyId] = []
    severity: Literal["low", "medium", "high"] | None = None
    dwell_s: Annotated[float, Meta(gt=0, le=1e7)] | None = None
    alerts: list[Literal["border_crossing", "zone_entry", "zone_exit", "dwell", "approach"]] | None = None


class _Geometry(Struct, frozen=True):
    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list


class _Feature(Struct, frozen=True):
    type: Literal["Feature"]
    properties: _Properties
    geometry: _Geometry


class _Collection(Struct, frozen=True):
    type: Literal["FeatureCollection"]
    features: Annotated[list[_Feature], Meta(min_length=1)]


_DEFAULT_ALERTS = {
    "country": ("border_crossing", "approach"),
    "sector": ("border_crossing", "approach"),
    "zone": ("zone_entry", "zone_exit", "dwell"),
}
_DEFAULT_SEVERITY = {"country": "high", "sector": "medium", "zone": "high"}


@dataclass(frozen=True, eq=False)
class Jurisdiction:
    """One country, sector or zone, with its polygon in local metres."""

    id: str
    name: str
    kind: str
    agency: str
    share_with: tuple[str, ...]
    severity: str
    dwell_s: float | None
    alerts: frozenset[str]
    polygon: BaseGeometry  # Polygon or MultiPolygon, east/north metres

    @property
    def recipients(self) -> tuple[str, ...]:
        """The responsible agency, then the agencies this jurisdiction shares with."""
        return tuple(dict.fromkeys((self.agency, *self.share_with)))


def _project(geometry: _Geometry, frame: LocalFrame, where: str, feature: str) -> BaseGeometry:
    """The geometry in local metres; ``where`` is its path in the file, ``feature`` names the feature."""
    try:
        lonlat = shapely.geometry.shape({"type": geometry.type, "coordinates": geometry.coordinates})
    except (ValueError, TypeError, IndexError, AttributeError) as error:
        raise JurisdictionError(f"{where}.coordinates: not a valid {geometry.type}: {error} ({feature})") from None
    coords = shapely.get_coordinates(lonlat)
    if coords.size == 0:
        raise JurisdictionError(f"{where}.coordinates: the {geometry.type} is empty ({feature})")
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        raise JurisdictionError(f"{where}.coordinates: longitude/latitude out of range ({feature}; "
                                "RFC 7946 order is lon, lat)")
    projected = shapely.transform(lonlat, lambda xy: np.column_stack(frame.to_enu(xy[:, 1], xy[:, 0])[:2]))
    if not projected.is_valid:
        raise JurisdictionError(f"{where}: invalid polygon: {_reason_lonlat(projected, frame)} ({feature})")
    return projected


_REASON_POINT = re.compile(r"^(?P<what>.*?)\s*\[(?P<e>[-+0-9.eE]+) (?P<n>[-+0-9.eE]+)\]$")


def _reason_lonlat(projected: BaseGeometry, frame: LocalFrame) -> str:
    """shapely's validity reason, its point (local metres) given back as lon/lat as in the file."""
    reason = shapely.is_valid_reason(projected)
    match = _REASON_POINT.match(reason)
    if match is None:
        return reason
    lat, lon, _ = frame.point_to_geodetic(float(match["e"]), float(match["n"]))
    return f"{match['what']} at lon {lon:.6f}, lat {lat:.6f}"


def load_jurisdictions(path: str | Path, frame: LocalFrame) -> tuple[Jurisdiction, ...]:
    """Read, check and project a jurisdiction file; raise :class:`JurisdictionError` naming file and field."""
    path = Path(path)
    try:
        document = json.loads(path.read_bytes())
    except OSError as error:
        raise JurisdictionError(f"{path}: cannot read: {error.strerror}") from None
    except ValueError as error:
        raise JurisdictionError(f"{path}: not valid JSON: {error}") from None
    try:
        collection = msgspec.convert(document, _Collection)
    except msgspec.ValidationError as error:
        text = str(error).replace("`$.", "`").replace("`$", "`")
        raise JurisdictionError(f"{path}: {text}") from None
    seen: set[str] = set()
    out: list[Jurisdiction] = []
    for i, feature in enumerate(collection.features):
        props, where = feature.properties, f"{path}: features[{i}]"
        if props.id in seen:
            raise JurisdictionError(f"{where}.properties.id: duplicate id {props.id!r}")
        seen.add(props.id)
        alerts = frozenset(props.alerts if props.alerts is not None else _DEFAULT_ALERTS[props.kind])
        if props.kind == "zone" and "dwell" in alerts and props.dwell_s is None:
            enabled = "listed in its alerts" if props.alerts is not None else \
                f"on by default for a zone (default alerts {', '.join(_DEFAULT_ALERTS['zone'])})"
            raise JurisdictionError(
                f"{where}.properties.dwell_s: missing for zone {props.id!r}, but its 'dwell' alert is {enabled}: "
                "give dwell_s in seconds (> 0), or an 'alerts' list without 'dwell'")
        out.append(Jurisdiction(
            id=props.id, name=props.name, kind=props.kind, agency=props.agency,
            share_with=tuple(props.share_with),
            severity=props.severity or _DEFAULT_SEVERITY[props.kind], dwell_s=props.dwell_s,
            alerts=alerts,
            polygon=_project(feature.geometry, frame, f"{where}.geometry", f"feature id {props.id!r}, name {props.name!r}"),
        ))
    if sum(j.kind == "country" for j in out) < 1:
        raise JurisdictionError(f"{path}: features: at least one feature of kind 'country' is needed")
    return tuple(out)
