"""Multi-target tracking in the local frame: numba kernels over one track table.

Imports no sibling package: it sees metres and seconds, nothing of MQTT, lat/lon
or jurisdictions.
"""

from pathlib import Path

from tracking.numba_cache import drop_stale_cache

# kernels in these modules call each other: numba would not see a change in a callee's file
drop_stale_cache(Path(__file__).parent, ("kernels.py", "imm.py", "manage.py", "existence.py", "merge.py"))

from tracking.config import TrackerConfig  # noqa: E402  (after the cache check, before any kernel runs)

__all__ = ["Tracker", "TrackerConfig", "TrackEstimates", "StepResult", "STATUS_NAMES"]


def __getattr__(name: str):
    """The tracker on first use (PEP 562): it imports numba, scipy and the kernels (~3 s), which the
    configuration alone (``borderfusion validate-config``, ``--help``) does not need."""
    if name in ("Tracker", "TrackEstimates", "StepResult", "STATUS_NAMES"):
        from tracking import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module 'tracking' has no attribute {name!r}")
