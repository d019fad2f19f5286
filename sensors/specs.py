"""Typed sensor declarations, the ``[[sensors]]`` tables of a site file (interface §5).

A tagged union on ``kind``: msgspec rejects an unknown kind, an unknown key, a
missing field or a value out of range with the path of the offending field.
Keys beyond the interface's example are optional and documented per field.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from sensors.schema import Lat, Lon

__all__ = ["RadarSpec", "GroundSpec", "DroneSpec", "SensorSpec"]

Alt = Annotated[float, Meta(ge=-1000.0, le=20000.0)]
Positive = Annotated[float, Meta(gt=0.0, le=1e7)]
Probability = Annotated[float, Meta(gt=0.0, le=1.0)]
NonNegative = Annotated[float, Meta(ge=0.0, le=1e6)]
SensorId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Spec(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    id: SensorId


class RadarSpec(_Spec, tag="radar", kw_only=True):
    """A scanning ground-surveillance radar reporting polar plots."""

    lat: Lat
    lon: Lon
    alt_m: Alt = 0.0
    max_range_m: Positive
    range_sigma_m: Positive
    azimuth_sigma_deg: Positive
    detection_probability: Probability = 0.9
    false_alarms_per_scan: NonNegative = 1.0
    #: sigma of ``radial_velocity_mps`` (extra key, default 0.5 m/s)
    radial_velocity_sigma_mps: Positive = 0.5
    #: time of one full scan (extra key; used by ``simulate``)
    scan_period_s: Positive = 1.0


class GroundSpec(_Spec, tag="ground", kw_only=True):
    """An unattended ground sensor: 'something within ``radius_m`` of this site'."""

    lat: Lat
    lon: Lon
    alt_m: Alt = 0.0
    radius_m: Positive
    #: sigma of ``bearing_deg`` when the sensor reports one (extra key)
    bearing_sigma_deg: Positive = 10.0
    #: sigma of ``range_m`` when the sensor reports one (extra key)
    range_sigma_m: Positive = 5.0
    detection_probability: Probability = 0.8
    #: spurious triggers per hour (extra key; used by ``simulate``)
    false_triggers_per_hour: NonNegative = 0.5


class DroneSpec(_Spec, tag="drone", kw_only=True):
    """A drone whose camera detections arrive already geolocated."""

    #: radius of the camera footprint on the ground around the platform (extra key)
    footprint_radius_m: Positive = 400.0
    detection_probability: Probability = 0.85
    #: CEP of the drone's geolocation (extra key; used by ``simulate``)
    cep_m: Positive = 8.0
    #: patrol orbit around (lat, lon) of this radius (extra keys; used by ``simulate``)
    patrol_lat: Lat | None = None
    patrol_lon: Lon | None = None
    patrol_radius_m: Positive = 1500.0
    report_period_s: Positive = 1.0


SensorSpec = RadarSpec | GroundSpec | DroneSpec
