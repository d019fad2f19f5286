"""Wire schemas of the three raw inputs (interface §2), decoded by msgspec.

Every float carries bounds, so NaN and ±inf (which fail every comparison) are
rejected by the decoder itself; unknown extra fields are ignored as the contract
says.  A ``classification`` is a struct with one optional field per class, so an
unknown class name is an error with its path.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "CLASSES",
    "Classification",
    "RadarPlot",
    "RadarScan",
    "GroundEvent",
    "DroneDetection",
    "DronePlatform",
    "DroneReport",
    "DECODERS",
    "MAX_PLOTS",
]

CLASSES: tuple[str, ...] = ("person", "vehicle", "animal", "uav", "unknown")
#: the most plots (detections) one radar (drone) message may hold
MAX_PLOTS = 10000

Prob = Annotated[float, Meta(ge=0.0, le=1.0)]
Time = Annotated[float, Meta(ge=0.0, le=1e11)]
Seq = Annotated[int, Meta(ge=0)]
Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
Alt = Annotated[float, Meta(ge=-1000.0, le=50000.0)]
Range = Annotated[float, Meta(ge=0.0, le=1e6)]
Sigma = Annotated[float, Meta(gt=0.0, le=1e6)]
Azimuth = Annotated[float, Meta(ge=0.0, le=360.0)]
Speed = Annotated[float, Meta(ge=-1000.0, le=1000.0)]
Decibel = Annotated[float, Meta(ge=-100.0, le=200.0)]


class Classification(Struct, forbid_unknown_fields=True):
    person: Prob = 0.0
    vehicle: Prob = 0.0
    animal: Prob = 0.0
    uav: Prob = 0.0
    unknown: Prob = 0.0


class RadarPlot(Struct):
    range_m: Range
    azimuth_deg: Azimuth
    radial_velocity_mps: Speed | None = None
    snr_db: Decibel | None = None
    range_sigma_m: Sigma | None = None
    azimuth_sigma_deg: Annotated[float, Meta(gt=0.0, le=180.0)] | None = None
    classification: Classification | None = None


class RadarScan(Struct):
    sensor_id: str
    t: Time
    seq: Seq
    plots: Annotated[list[RadarPlot], Meta(max_length=MAX_PLOTS)]
    #: [from_deg, to_deg] clockwise: this message reports (and looked at) that sector only (:mod:`sensors.sector`)
    sector_deg: tuple[Azimuth, Azimuth] | None = None


class GroundEvent(Struct):
    sensor_id: str
    t: Time
    seq: Seq
    modality: str | None = None
    classification: Classification | None = None
    bearing_deg: Azimuth | None = None
    range_m: Range | None = None


class DronePlatform(Struct):
    lat: Lat
    lon: Lon
    alt_m: Alt | None = None


class DroneDetection(Struct):
    lat: Lat
    lon: Lon
    cep_m: Sigma
    classification: Classification | None = None


class DroneReport(Struct):
    sensor_id: str
    t: Time
    seq: Seq
    platform: DronePlatform | None = None
    detections: Annotated[list[DroneDetection], Meta(max_length=MAX_PLOTS)] = []


DECODERS: dict[str, msgspec.json.Decoder] = {
    "radar": msgspec.json.Decoder(RadarScan),
    "ground": msgspec.json.Decoder(GroundEvent),
    "drone": msgspec.json.Decoder(DroneReport),
}
