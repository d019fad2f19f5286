"""Validate every raw message and turn the good ones into scans (interface §2, §3.3).

:meth:`Ingestor.ingest` is the single entry: bytes and a topic in, a
:class:`~sensors.batch.Scan` or a :class:`Rejection` out.  The checks run in the
order a person would debug them (size, topic, JSON, fields, sensor, time, sequence)
and only a message that passes all of them changes any state.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec
import numpy as np

from geo.frame import LocalFrame
from sensors.batch import Scan
from sensors.clocks import SensorClocks
from sensors.normalize import CEP_TO_SIGMA, DronePlacement, SensorModel, place_drone_report
from sensors.schema import DECODERS, DroneReport, RadarScan
from sensors.sector import in_sector_deg, sector_problem, sector_span_deg

__all__ = ["Rejection", "Ingestor", "IngestLimits", "MAX_PAYLOAD_BYTES", "format_validation_error",
           "undecodable_reason"]

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 256 * 1024
#: a drone detection may lie this many σ of its geolocation error beyond the camera footprint
FOOTPRINT_SIGMAS = 4.0
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
    #: a message whose clock runs further ahead of the other sensors' is rejected (:mod:`sensors.clocks`)
    max_clock_lead_s: float = 2.0


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


def _valid_choices(root_type, path: str) -> tuple[str, ...]:
    """The values a tag or enum field at ``path`` of ``root_type`` accepts (empty if none).

    Walks msgspec's type description along the path: a struct field by name, a list
    item by index; at the end, the tags of a tagged union or the members of a
    ``Literal``/``Enum``.
    """
    node = msgspec.inspect.type_info(root_type)
    tokens = _PATH_TOKEN.findall(path)
    for position, (name, index) in enumerate(tokens):
        last = position == len(tokens) - 1
        if isinstance(node, msgspec.inspect.UnionType):
            structs = [t for t in node.types if isinstance(t, msgspec.inspect.StructType)]
            if last and name and structs and all(t.tag_field == name for t in structs):
                return tuple(str(t.tag) for t in structs)
            node = structs[0] if len(structs) == 1 else None
        if isinstance(node, msgspec.inspect.StructType) and name:
            node = next((f.type for f in node.fields if f.encode_name == name), None)
        elif isinstance(node, (msgspec.inspect.ListType, msgspec.inspect.TupleType)) and index:
            node = getattr(node, "item_type", None)
        else:
            return ()
        if isinstance(node, msgspec.inspect.UnionType):  # T | None: look through to T
            others = [t for t in node.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(others) == 1:
                node = others[0]
    if isinstance(node, (msgspec.inspect.LiteralType, msgspec.inspect.EnumType)):
        values = node.values if isinstance(node, msgspec.inspect.LiteralType) else [m.value for m in node.cls]
        return tuple(str(v) for v in values)
    return ()


def format_validation_error(error: msgspec.ValidationError, payload: bytes, root_type=None) -> str:
    """msgspec's 'Expected … - at `$.a[0].b`' → 'a[0].b: expected …, got <value>'.

    The reason names the field, what was expected and what arrived: msgspec already
    says which JSON type arrived (``got `str```); the value is added when it tells
    more than the type (a string, a number), never a second time (``null``).  When
    ``root_type`` (the decoded type) is given, an invalid tag or enum value lists
    the valid ones.
    """
    what, path = _MSGSPEC_AT.match(str(error)).groups()
    what = what[0].lower() + what[1:]
    if not path:
        return what
    where = path.lstrip(".")
    if what.startswith(("invalid value", "invalid enum value")):
        choices = _valid_choices(root_type, path) if root_type is not None else ()
        return f"{where}: {what}" + (f", expected one of {', '.join(choices)}" if choices else "")
    try:
        got = _lookup(json.loads(payload), path)
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return f"{where}: {what}"
    if isinstance(got, float) and not math.isfinite(got):
        return f"{where}: expected a finite number, got {_describe(got)}"
    if got is None or isinstance(got, (dict, list, bool)):  # the type msgspec names says it all
        return f"{where}: {what}"
    if ", got `" in what:  # 'expected `float`, got `str`' → '… got `str` "north"'
        return f"{where}: {what} {_describe(got)}"
    return f"{where}: {what}, got {_describe(got)}"


def undecodable_reason(error: UnicodeDecodeError | RecursionError, payload: bytes) -> str:
    """The reason for bytes no JSON decoder here can read: invalid UTF-8, or nested too deeply.

    msgspec raises these instead of a ``DecodeError``: ``UnicodeDecodeError`` for a
    string with bytes that are not UTF-8 (its position is inside that string, so
    the offset in the payload is found again here, on the rejection path only),
    ``RecursionError`` for arrays/objects nested about a thousand levels deep (its
    limit is the interpreter's recursion limit).  No valid input is nested deeper
    than four levels.
    """
    if isinstance(error, UnicodeDecodeError):
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as located:
            error = located
        return (f"not JSON: invalid UTF-8 at byte {error.start} ({error.reason}); "
                "JSON text must be UTF-8 (any character can be sent as a \\u escape)")
    return (f"not JSON we accept: arrays/objects nested deeper than about {sys.getrecursionlimit()} levels "
            "(a valid input needs 4)")


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


def _sector_problem(message) -> str | None:
    """A radar message's ``sector_deg`` must be a sector, and hold every plot of the message
    (a sector message reports that sector only, interface §2.1; ends included)."""
    if not isinstance(message, RadarScan) or message.sector_deg is None:
        return None
    problem = sector_problem(message.sector_deg)
    if problem or not message.plots:
        return problem
    start, width = sector_span_deg(*message.sector_deg)
    inside = in_sector_deg(np.array([p.azimuth_deg for p in message.plots]), start, width)
    if inside.all():
        return None
    i = int(np.flatnonzero(~inside)[0])
    from_deg, to_deg = message.sector_deg
    return (f"plots[{i}].azimuth_deg: {message.plots[i].azimuth_deg:g} is outside the message's sector_deg "
            f"[{from_deg:g}, {to_deg:g}] (clockwise from {from_deg:g} to {to_deg:g}); a sector message carries "
            "only the plots of its sector")


def _footprint_problem(message, sensor: SensorModel, placement: DronePlacement | None) -> str | None:
    """A drone detection must lie within the camera footprint around its platform.

    The footprint is a circle of ``footprint_radius_m`` (site config) around the platform's
    ground position; a detection's own geolocation error is allowed on top, 4 σ of it
    (σ = CEP / 1.1774): a target at the footprint's edge is placed farther out than that
    once in 30,000 detections, whereas CEP alone (1.18 σ) rejected one in eight of those at
    the edge (two reports in 300 s of the demo's drone at 1,000 targets).  A report without
    a platform position cannot be checked here.  ``placement``: the report's positions in
    the local frame (None for other messages).
    """
    if placement is None or placement.platform_en is None or not message.detections:
        return None
    radius = getattr(sensor.spec, "footprint_radius_m", None)
    if radius is None:
        return None
    pe, pn = placement.platform_en
    e, n = placement.detections_en[:, 0], placement.detections_en[:, 1]
    distance = np.hypot(e - pe, n - pn)
    allowed = radius + FOOTPRINT_SIGMAS * CEP_TO_SIGMA * np.array([d.cep_m for d in message.detections])
    outside = np.flatnonzero(~(distance <= allowed))  # NaN distances count as outside
    if outside.size == 0:
        return None
    i = int(outside[0])
    return (f"detections[{i}]: {distance[i]:.0f} m from the platform, outside its camera footprint "
            f"({radius:g} m + {FOOTPRINT_SIGMAS:g} σ of its CEP {message.detections[i].cep_m:g} m = "
            f"{allowed[i]:.0f} m); lat/lon of a detection must be where the camera looks")


def _rejection(t_rx: float, topic: str, payload: bytes, reason: str) -> Rejection:
    text = payload[:_PAYLOAD_ECHO_BYTES].decode("utf-8", errors="replace")
    return Rejection(t_rx, topic, reason, text)


class Ingestor:
    """Topic + payload bytes → Scan or Rejection, with per-sensor duplicate memory."""

    def __init__(self, sensors: list[SensorModel], frame: LocalFrame, prefix: str,
                 limits: IngestLimits = IngestLimits()) -> None:
        self._sensors = {s.spec.id: s for s in sensors}
        self._frame = frame
        self._raw_prefix = prefix.rstrip("/") + "/raw/"
        self._limits = limits
        self._seq: dict[str, _SeqState] = {}
        self.clocks = SensorClocks(limits.max_clock_lead_s)

    def ingest(self, t_rx: float, topic: str, payload: bytes, not_before: float = -math.inf) -> Scan | Rejection:
        """Validate one message; ``not_before`` is the sensor time the reorder buffer has released up to.

        Never raises for any payload: every decoder error has its own reason, and an
        error nobody foresaw becomes a rejection naming the exception (and is
        logged), so that one message can never stop the node.
        """
        try:
            return self._ingest(t_rx, topic, payload, not_before)
        except Exception as error:  # noqa: BLE001 — the last guard of the live loop
            log.error("ingest: unexpected %s on a message from %s; rejected", type(error).__name__, topic,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            return _rejection(t_rx, topic, payload, f"could not be processed ({type(error).__name__}: {str(error)[:200]}); "
                                                    "please report this input")

    def _ingest(self, t_rx: float, topic: str, payload: bytes, not_before: float) -> Scan | Rejection:
        def reject(reason: str) -> Rejection:
            return _rejection(t_rx, topic, payload, reason)

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
            return reject(format_validation_error(error, payload, decoder.type))
        except msgspec.DecodeError as error:
            return reject(self._not_json(payload, decoder, error))
        except (UnicodeDecodeError, RecursionError) as error:
            return reject(undecodable_reason(error, payload))
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
        clock = self.clocks.problem(message.sensor_id, message.t, t_rx)
        if clock:
            return reject(clock)
        if message.t < not_before:
            return reject(f"t: {message.t!r} is older than the reorder window "
                          f"(already processed up to {not_before!r}, {not_before - message.t:.2f} s later)")
        placement = place_drone_report(message, self._frame) if isinstance(message, DroneReport) else None
        problem = (_classification_problem(message) or _sector_problem(message)
                   or _footprint_problem(message, sensor, placement))
        if problem:
            return reject(problem)
        duplicate = self._duplicate(message)
        if duplicate:
            return reject(duplicate)
        try:
            scan = sensor.normalize(message, self._frame, placement)
        except (ValueError, ArithmeticError) as error:
            return reject(f"could not place the detections in the local frame: {error}")
        self._remember(message)
        return scan

    # -- checkpoint ------------------------------------------------------------------
    def export_state(self) -> dict:
        """The per-sensor duplicate windows as plain data, ``{sensor: {"newest_t", "seen": [[seq, t], ...]}}``
        (oldest first), so that a message redelivered after a restart is still known; and the sensor clocks."""
        return {"seq": {sensor: {"newest_t": state.newest_t, "seen": [[seq, t] for seq, t in state.seen.items()]}
                        for sensor, state in self._seq.items()},
                "clocks": self.clocks.export_state()}

    def import_state(self, data: dict) -> None:
        """Take over the duplicate windows of :meth:`export_state`."""
        self._seq = {sensor: _SeqState(float(d["newest_t"]), OrderedDict((int(q), float(t)) for q, t in d["seen"]))
                     for sensor, d in data["seq"].items()}
        self.clocks.import_state(data["clocks"])

    def _not_json(self, payload: bytes, decoder: msgspec.json.Decoder, error: msgspec.DecodeError) -> str:
        # Python's parser accepts NaN/Infinity, which msgspec (strict JSON) does not:
        # re-check through it so that the reason names the offending field.
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, RecursionError) as strict_error:
            return undecodable_reason(strict_error, payload)
        except ValueError as strict_error:
            return f"not JSON: {strict_error}"
        try:
            msgspec.convert(document, decoder.type)
        except msgspec.ValidationError as validation:
            return format_validation_error(validation, payload, decoder.type)
        except RecursionError as deep:
            return undecodable_reason(deep, payload)
        except UnicodeError:  # a lone surrogate escape ("\\ud800"): Python's parser takes it, msgspec does not
            pass
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
