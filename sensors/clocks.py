"""Per-sensor clocks: a sensor whose timestamps run ahead of the others' is caught, not obeyed.

The reorder buffer's data clock is the newest sensor time accepted from anyone
(:mod:`sensors.reorder`), so one sensor stamping its data ahead would release
everybody else's data early and make it "too old".  Each sensor's clock is compared
with the others' through the receive clock: its offset ``o = t − t_rx`` (sensor time
minus receive time, i.e. minus the link delay for a correct clock) against the
largest offset among the *other* sensors heard within ``active_s`` of receive time::

    lead = (t − t_rx) − max_{s' ≠ s} (t_s' − t_rx,s')

A correct clock's lead is at most the difference of two link delays; a message
leading by more than ``max_lead_s`` is rejected with the lead in its reason.  Every
message checked updates its own sensor's offset, rejected or not: a wrong clock
then only raises the others' reference (it is never compared with itself), and a
shift of *every* offset at once (the node's clock stepped back, or input replayed
faster than real time after a gap) costs at most the first message after it,
instead of rejecting everybody against offsets that no longer change.  The largest other offset (not a median) is the reference because
sensors that report rarely (ground sensors) have old offsets, which only lower it.
A sensor running *behind* harms only itself (its data arrives after the window);
its lag is reported (:meth:`SensorClocks.leads`) but not rejected here.

With no other sensor heard recently there is no reference and nothing is rejected
(the ingest limit ``max_future_s`` against the receive time still applies).
"""

from __future__ import annotations

import math

__all__ = ["SensorClocks"]


class SensorClocks:
    def __init__(self, max_lead_s: float = 2.0, active_s: float = 30.0) -> None:
        self.max_lead_s = max_lead_s
        self.active_s = active_s
        self._offset: dict[str, tuple[float, float]] = {}  # sensor → (t − t_rx, t_rx) of its newest accepted message
        self.rejected: dict[str, int] = {}

    def lead(self, sensor_id: str, t: float, t_rx: float) -> float:
        """How far ``t`` (received at ``t_rx``) runs ahead of the other active sensors' clocks (−inf: no reference)."""
        others = [o for s, (o, rx) in self._offset.items() if s != sensor_id and t_rx - rx <= self.active_s]
        return (t - t_rx) - max(others) if others else -math.inf

    def problem(self, sensor_id: str, t: float, t_rx: float) -> str | None:
        """The rejection reason for a message whose clock leads the others' beyond ``max_lead_s``; None if fine."""
        lead = self.lead(sensor_id, t, t_rx)
        self._offset[sensor_id] = (t - t_rx, t_rx)
        if lead <= self.max_lead_s:
            return None
        self.rejected[sensor_id] = self.rejected.get(sensor_id, 0) + 1
        return (f"t: {t!r} runs {lead:.1f} s ahead of the other sensors' clocks (tolerance {self.max_lead_s:g} s); "
                f"check the clock of sensor {sensor_id!r}")

    def leads(self, t_rx: float) -> dict[str, float]:
        """Each recently heard sensor's offset relative to the most advanced other one (s; for the status)."""
        out = {}
        for sensor, (offset, rx) in sorted(self._offset.items()):
            if t_rx - rx <= self.active_s:
                others = [o for s, (o, r) in self._offset.items() if s != sensor and t_rx - r <= self.active_s]
                if others:
                    out[sensor] = round(offset - max(others), 3)
        return out

    def export_state(self) -> dict:
        return {"offset": {s: list(v) for s, v in self._offset.items()}, "rejected": dict(self.rejected)}

    def import_state(self, data: dict) -> None:
        self._offset = {s: (float(o), float(rx)) for s, (o, rx) in data["offset"].items()}
        self.rejected = {s: int(n) for s, n in data["rejected"].items()}
