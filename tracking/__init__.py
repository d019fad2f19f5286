"""Multi-target tracking in the local frame: numba kernels over one track table.

Imports no sibling package: it sees metres and seconds, nothing of MQTT, lat/lon
or jurisdictions.
"""

from tracking.config import TrackerConfig
from tracking.tracker import STATUS_NAMES, StepResult, TrackEstimates, Tracker

__all__ = ["Tracker", "TrackerConfig", "TrackEstimates", "StepResult", "STATUS_NAMES"]
