"""Ingest: validate raw sensor payloads and normalize them into the local frame."""

from sensors.batch import Scan
from sensors.ingest import IngestLimits, Ingestor, Rejection
from sensors.normalize import SensorModel
from sensors.reorder import ReorderBuffer

__all__ = ["Scan", "Ingestor", "IngestLimits", "Rejection", "SensorModel", "ReorderBuffer"]
