"""Validate every raw message and turn the good ones into scans (interface §2, §3.3).

:meth:`Ingestor.ingest` is the single entry: bytes and a topic in, a
:class:`~sensors.batch.Scan` or a :class:`Rejection` out.  The checks run in the
order a person would debug them (size, topic, JSON, fields, sensor, time, sequence)
and only a message that passes all of them changes any state.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec

from geo.frame import LocalFrame
from sensors.batch import Scan
from sensors.normalize import SensorModel
from sensors.schema import DECODERS, DroneReport, RadarScan

__all__ = ["Rejection", "Ingestor", "IngestLimits", "MAX_PAYLOAD_BYTES", "format_validation_error"]

MAX_PAYLOAD_BYTES = 256 * 1024
_PAYLOAD_ECHO_BYTES = 4096
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_MSGSPEC_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)


@dataclass(frozen=True)
class Rejection:
    """An input that was not used, and why (interface §3.3)."""

    t_received: float
    topic: str
    reason: str
    payload: str

    def to_dict(self) -> dict:
        return {"t_received": self.t_received, "topic": self.topic, "reason": self.reason,
                "payload": self.payload}


@dataclass(frozen=True)
class IngestLimits:
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    #: a message stamped further than this ahead of its receive time is rejected
    max_future_s: float = 30.0
    #: how many recent sequence numbers are remembered per sensor for duplicates
    seq_memory: int = 4096


@dataclass
class _SeqState:
    newest_t: float = -math.inf
    seen: OrderedDict = field(default_factory=OrderedDict)


def _lookup(document, path: str):
    value = document
    for name, index in _PATH_TOKEN.findall(path):
        value = value[name] if name else value[int(index)]
    return value


def _describe(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = json.dumps(value, allow_nan=True)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(error: msgspec.ValidationError, payload: bytes) -> str:
    """msgspec's 'Expected … - at `$.a[0].b`' → 'a[0].b: expected …, got <value>'."""
    what, path = _MSGSPEC_AT.match(str(error)).groups()
    what = what[0].lower() + what[1:]
    if not path:
        return what
    where = path.lstrip(".")
    try:
        got = _lookup(json.loads(payload), path)
    except (ValueError, KeyError, IndexError, TypeError):
        return f"{where}: {what}"
    if isinstance(got, float) and not math.isfinite(got):
        return f"{where}: expected a finite number, got {_describe(got)}"
    if isinstance(got, (dict, list)):
        return f"{where}: {what}"
    return f"{where}: {what}, got {_describe(got)}"


def _classification_problem(message) -> str | None:
    """Class probabilities must sum to at most 1 (decoding already bounds each to [0, 1])."""
    if isinstance(message, RadarScan):
        items = (("plots", i, p.classification) for i, p in enumerate(message.plots) if p.classification is not None)
    elif isinstance(message, DroneReport):
        items = (("detections", i, d.classification) for i, d in enumerate(message.detections)
                 if d.classification is not None)
    else:
        items = iter([("", None, message.classification)] if message.classification is not None else [])
    for field_name, index, c in items:
        total = c.person + c.vehicle + c.animal + c.uav + c.unknown
        if total > 1.0 + 1e-6:
            where = f"{field_name}[{index}].classification" if field_name else "classification"
            return f"{where}: probabilities sum to {total:.6g}, expected at most 1"
    return None


class Ingestor:
    """Topic + payload bytes → Scan or Rejection, with per-sensor duplicate memory."""

    def __init__(self, sensors: list[SensorModel], frame: LocalFrame, prefix: str,
                 limits: IngestLimits = IngestLimits()) -> None:
        self._sensors = {s.spec.id: s for s in sensors}
        self._frame = frame
        self._raw_prefix = prefix.rstrip("/") + "/raw/"
        self._limits = limits
        self._seq: dict[str, _SeqState] = {}

    def ingest(self, t_rx: float, topic: str, payload: bytes, not_before: float = -math.inf) -> Scan | Rejection:
        """Validate one message; ``not_before`` is the sensor time the reorder buffer has released up to."""

        def reject(reason: str) -> Rejection:
            text = payload[:_PAYLOAD_ECHO_BYTES].decode("utf-8", errors="replace")
            return Rejection(t_rx, topic, reason, text)

        if len(payload) > self._limits.max_payload_bytes:
            return reject(f"payload is {len(payload)} bytes, larger than the {self._limits.max_payload_bytes} byte limit")
        if not topic.startswith(self._raw_prefix):
            return reject(f"topic: expected {self._raw_prefix}{{radar|ground|drone}}/{{sensor_id}}")
        kind, _, topic_sensor = topic[len(self._raw_prefix):].partition("/")
        decoder = DECODERS.get(kind)
        if decoder is None or not topic_sensor or "/" in topic_sensor:
            return reject(f"topic: unknown input kind {kind!r} or missing sensor id (expected radar, ground or drone, then the sensor id)")
        try:
            message = decoder.decode(payload)
        except msgspec.ValidationError as error:
            return reject(format_validation_error(error, payload))
        except msgspec.DecodeError as error:
            return reject(self._not_json(payload, decoder, error))
        if message.sensor_id != topic_sensor:
            return reject(f"sensor_id: {message.sensor_id!r} does not match the topic's sensor id {topic_sensor!r}")
        sensor = self._sensors.get(message.sensor_id)
        if sensor is None:
            return reject(f"sensor_id: unknown sensor {message.sensor_id!r} (not declared in the site config)")
        if sensor.kind != kind:
            return reject(f"topic: sensor {message.sensor_id!r} is declared as {sensor.kind!r}, not {kind!r}")
        if message.t > t_rx + self._limits.max_future_s:
            return reject(f"t: {message.t!r} is {message.t - t_rx:.1f} s ahead of the receive time "
                          f"(limit {self._limits.max_future_s:g} s); check the sensor clock")
        if message.t < not_before:
            return reject(f"t: {message.t!r} is older than the reorder window "
                          f"(already processed up to {not_before!r}, {not_before - message.t:.2f} s later)")
        problem = _classification_problem(message)
        if problem:
            return reject(problem)
        duplicate = self._duplicate(message)
        if duplicate:
            return reject(duplicate)
        try:
            scan = sensor.normalize(message, self._frame)
        except ValueError as error:
            return reject(f"could not place the detections in the local frame: {error}")
        self._remember(message)
        return scan

    def _not_json(self, payload: bytes, decoder: msgspec.json.Decoder, error: msgspec.DecodeError) -> str:
        # Python's parser accepts NaN/Infinity, which msgspec (strict JSON) does not:
        # re-check through it so that the reason names the offending field.
        try:
            document = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as strict_error:
            return f"not JSON: {strict_error}"
        try:
            msgspec.convert(document, decoder.type)
        except msgspec.ValidationError as validation:
            return format_validation_error(validation, payload)
        return f"not JSON: {error}"

    def _duplicate(self, message) -> str | None:
        """A repeated ``seq`` is a duplicate unless it is newer than anything the sensor sent.

        A sensor that reboots restarts at ``seq`` 0 with a fresh timestamp: that
        resets its memory instead of locking it out.  A re-delivered message carries
        its old timestamp and is caught.
        """
        state = self._seq.get(message.sensor_id)
        if state is None or message.seq not in state.seen:
            return None
        if message.t > state.newest_t:
            return None
        return (f"seq: duplicate {message.seq} from sensor {message.sensor_id!r} "
                f"(already received with t={state.seen[message.seq]!r})")

    def _remember(self, message) -> None:
        state = self._seq.setdefault(message.sensor_id, _SeqState())
        if message.seq in state.seen:  # a restart: forget the previous run of sequence numbers
            state.seen.clear()
        state.seen[message.seq] = message.t
        if len(state.seen) > self._limits.seq_memory:
            state.seen.popitem(last=False)
        state.newest_t = max(state.newest_t, message.t)
