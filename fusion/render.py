"""Track snapshots (interface §3.1) rendered from arrays, with no Python per track.

A snapshot of n tracks is first a :class:`SnapshotTable`: every field as a column,
computed and rounded as arrays (lat/lon in one pyproj call, σ from one batched
``eigvalsh``, the country from one containment pass, the sensors from the bitmask).
From the table, two renderings:

* :func:`snapshot_json`, the wire form, written by one numba pass into a byte
  buffer: the fixed text (keys, braces) and the values interleaved.  Numbers rounded
  to d decimals are written as integer digits (see :func:`_fast_floats` for why that
  is exactly msgspec's shortest round-trip text); the rare others (NaN, ±inf, tiny,
  huge) and the strings that take few values (status, country, the sensor list of a
  bitmask) are encoded by msgspec once and copied.  The bytes are those of
  ``msgspec.json.encode(snapshot dict)`` (tested against that renderer).
* Parquet rows (:mod:`fusion.parquet`), one per track, straight from the columns.

Cost (2-core box, busy): columns ~0.5 µs and JSON ~1.5 µs per track (10,000 tracks:
~5 + ~15 ms of CPU), against ~40 µs per track for the dict per track it replaced.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
from numba import njit

from tracking.tracker import STATUS_NAMES
from tracking.warmup import cache_is_cold, warm_up

__all__ = ["CLASSES", "SnapshotTable", "snapshot_table", "snapshot_json", "sensor_lists_json", "warm_up_kernels"]

CLASSES = ("person", "vehicle", "animal", "uav", "unknown")

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, eq=False)
class SnapshotTable:
    """One snapshot as columns over its n tracks, every number already rounded as on the wire.

    ``status`` indexes :data:`STATUS_NAMES`; ``country`` indexes ``country_ids`` (−1: in no
    country); ``sensor_bits[i, s]``: sensor ``sensor_ids[s]`` contributed to track i.
    """

    node_id: str
    t: float
    track_id: np.ndarray  # int64
    status: np.ndarray  # int8
    lat: np.ndarray
    lon: np.ndarray
    east_m: np.ndarray
    north_m: np.ndarray
    vel_east_mps: np.ndarray
    vel_north_mps: np.ndarray
    speed_mps: np.ndarray
    heading_deg: np.ndarray
    position_sigma_m: np.ndarray
    covariance: np.ndarray  # (n, 4, 4)
    existence: np.ndarray
    class_prob: np.ndarray  # (n, 5), in CLASSES order
    country: np.ndarray  # int64
    country_ids: tuple[str, ...]
    sensor_bits: np.ndarray  # (n, n_sensors) bool
    sensor_ids: tuple[str, ...]
    first_seen: np.ndarray
    last_update: np.ndarray

    def __len__(self) -> int:
        return int(self.track_id.size)


def snapshot_table(node_id: str, t: float, estimates, lat: np.ndarray, lon: np.ndarray, country: np.ndarray,
                   country_ids: tuple[str, ...], sensor_bits: np.ndarray, sensor_ids: tuple[str, ...]) -> SnapshotTable:
    """The columns of a snapshot from the tracker's estimates (``x`` = east, north, vₑ, vₙ; ``P``).

    ``lat``/``lon``, ``country`` and ``sensor_bits`` come from the frame, the geofence and
    the track table (the caller's; this module imports none of them).  Derived fields:
    speed = |v|, heading = atan2(vₑ, vₙ) in degrees clockwise from north in [0, 360),
    position σ = √(largest eigenvalue of the 2×2 position covariance), the 1-σ semi-major
    axis.  Rounding (decimals): lat/lon 7 (~1 cm), metres 2, m/s 3, degrees 2, σ 2,
    covariance and probabilities 4, times 3.
    """
    x, P = estimates.x, estimates.P
    ve, vn = x[:, 2], x[:, 3]
    if len(x):
        sigma = np.sqrt(np.maximum(0.0, np.linalg.eigvalsh(P[:, :2, :2])[:, -1]))
    else:
        sigma = np.zeros(0)
    return SnapshotTable(
        node_id=node_id, t=round(t, 3), track_id=estimates.track_id, status=estimates.status,
        lat=np.round(lat, 7), lon=np.round(lon, 7), east_m=np.round(x[:, 0], 2), north_m=np.round(x[:, 1], 2),
        vel_east_mps=np.round(ve, 3), vel_north_mps=np.round(vn, 3), speed_mps=np.round(np.hypot(ve, vn), 3),
        heading_deg=np.round(np.degrees(np.arctan2(ve, vn)) % 360.0, 2), position_sigma_m=np.round(sigma, 2),
        covariance=np.round(P, 4), existence=np.round(estimates.existence, 4),
        class_prob=np.round(estimates.class_prob, 4), country=country, country_ids=country_ids,
        sensor_bits=sensor_bits, sensor_ids=sensor_ids, first_seen=np.round(estimates.first_seen, 3),
        last_update=np.round(estimates.last_update, 3))


# -- JSON -----------------------------------------------------------------------------------
def _key(name: str) -> bytes:
    return _encode(name) + b":"


_NUMBERS_BEFORE = ("lat", "lon", "east_m", "north_m", "vel_east_mps", "vel_north_mps", "speed_mps", "heading_deg",
                   "position_sigma_m")
#: decimals of every float column, in wire order: the 9 above, covariance (16), existence, classes (5), times (2)
_DECIMALS = np.array([7, 7, 2, 2, 3, 3, 3, 2, 2] + [4] * 16 + [4] + [4] * 5 + [3, 3], np.int64)
_FLOAT, _INT, _PICK = 0, 1, 2
#: what each value of a track object is, in wire order: (kind, column of its kind)
_SLOTS = ([(_INT, 0), (_PICK, 0)] + [(_FLOAT, c) for c in range(9 + 16 + 1 + 5)]
          + [(_PICK, 1), (_PICK, 2), (_FLOAT, 31), (_FLOAT, 32)])
_SLOT_KIND = np.array([kind for kind, _ in _SLOTS], np.int64)
_SLOT_COLUMN = np.array([column for _, column in _SLOTS], np.int64)
#: covariance entry (r, c) below the diagonal: the slot of (c, r), whose text it repeats when the rounded
#: values are equal (P is symmetric: they nearly always are); −1 elsewhere
_COVARIANCE_SLOT = 2 + len(_NUMBERS_BEFORE)
_MIRROR = np.full(len(_SLOTS), -1, np.int64)
for _r in range(4):
    for _c in range(_r):
        _MIRROR[_COVARIANCE_SLOT + 4 * _r + _c] = _COVARIANCE_SLOT + 4 * _c + _r
_POW10 = 10 ** np.arange(19, dtype=np.int64)

def _quad_table() -> np.ndarray:
    """Row g (0–9999): the 4 ASCII digits of g zero-padded, its digit count, its trailing zeros."""
    table = np.zeros((10_000, 6), np.uint8)
    for g in range(10_000):
        text = f"{g:04d}"
        table[g, :4] = np.frombuffer(text.encode(), np.uint8)
        table[g, 4] = len(str(g))
        table[g, 5] = len(text) - len(text.rstrip("0"))
    return table


_QUADS = _quad_table()
assert _DECIMALS.max() <= 8  # _write_fraction writes at most two groups of four
#: room for a fast-path float's text: sign, 15 digits, point, 7 decimals (and to spare)
_FLOAT_BYTES = 32


def _fragments(start: bytes, node_id: str) -> list[bytes]:
    """The fixed text around the values: [before the first track's id, after each value of a track
    but its last, between two tracks, after the last track].

    The track id is ``"<node>-<n>"``: the quote opens in the fixed text before the number.
    """
    head = b'{"track_id":' + _encode(f"{node_id}-")[:-1]
    after = [b'",' + _key("status")] + [b"," + _key(name) for name in _NUMBERS_BEFORE]
    after.append(b"," + _key("covariance") + b"[[")
    for row in range(4):
        after += [b","] * 3 + [b"],[" if row < 3 else b"]]," + _key("existence")]
    after[-1:] = [after[-1], b"," + _key("classification") + b"{" + _key(CLASSES[0])]
    after += [b"," + _key(name) for name in CLASSES[1:]]
    after += [b"}," + _key("jurisdiction"), b"," + _key("sensors"), b"," + _key("first_seen"),
              b"," + _key("last_update")]
    assert len(after) == len(_SLOTS) - 1
    return [start + head, *after, b"}," + head, b"}]}"]


def _concatenated(pieces: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(bytes as uint8, offsets): piece i is ``buffer[offsets[i]:offsets[i + 1]]``."""
    offsets = np.zeros(len(pieces) + 1, np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(b"".join(pieces) or b"\0", np.uint8), offsets


def sensor_lists_json(sensor_bits: np.ndarray, sensor_ids: tuple[str, ...]) -> tuple[list[bytes], np.ndarray]:
    """(the distinct JSON lists of contributing sensors' ids, which one each track has).

    Encoded once per distinct set of sensors (a handful); up to 64 sensors a set is one
    uint64, so finding the distinct sets is one 1-D sort."""
    n = sensor_bits.shape[0]
    packed = np.packbits(sensor_bits, axis=1, bitorder="little")
    if packed.shape[1] <= 8:
        key = np.zeros((n, 8), np.uint8)
        key[:, :packed.shape[1]] = packed
        _, first, which = np.unique(key.view(np.uint64).ravel(), return_index=True, return_inverse=True)
        distinct = packed[first]
    else:
        distinct, which = np.unique(packed, axis=0, return_inverse=True)
    ids = np.array(sensor_ids, dtype=object)
    bits = np.unpackbits(distinct, axis=1, count=sensor_bits.shape[1], bitorder="little").astype(bool)
    return [_encode(ids[row].tolist()) for row in bits], which.reshape(-1)


def _fast_floats(values: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    """Where the kernel's text of a value rounded to ``decimals`` is msgspec's: finite, 0 or
    10⁻⁴ ≤ |v|, and |v|·10^d < 10¹⁵.

    Then v is the double nearest k·10⁻ᵈ (k = v·10ᵈ, an integer), and as ulp(v) < 10⁻ᵈ no
    shorter decimal rounds to v: the shortest round-trip text, msgspec's, is k's digits
    with the point d places from the right, trailing zeros dropped (one kept); msgspec
    writes such values without an exponent.  Others (NaN, ±inf, tiny, huge) go through
    msgspec itself.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        magnitude = np.abs(values)
        return (np.isfinite(values) & (magnitude * 10.0 ** decimals < 1e15)
                & ((magnitude >= 1e-4) | (magnitude == 0.0)))


def snapshot_json(table: SnapshotTable) -> bytes:
    """The snapshot as interface §3.1 JSON bytes, equal to msgspec's encoding of its dict form."""
    n = len(table)
    start = _encode({"node_id": table.node_id, "t": table.t, "tracks": []})[:-2]  # ends '"tracks":['
    if n == 0:
        return start + b"]}"
    floats = np.empty((n, _DECIMALS.size))
    floats[:, 0:9] = np.column_stack([getattr(table, name) for name in _NUMBERS_BEFORE])
    floats[:, 9:25] = table.covariance.reshape(n, 16)
    floats[:, 25] = table.existence
    floats[:, 26:31] = table.class_prob
    floats[:, 31] = table.first_seen
    floats[:, 32] = table.last_update
    fast = _fast_floats(floats, _DECIMALS)
    # the token table: statuses, countries and null, sensor lists, then the odd floats' texts
    sensor_texts, sensor_pick = sensor_lists_json(table.sensor_bits, table.sensor_ids)
    tokens = [_encode(name) for name in STATUS_NAMES]
    country_base = len(tokens)
    tokens += [_encode(c) for c in table.country_ids] + [b"null"]
    sensor_base = len(tokens)
    tokens += sensor_texts
    odd_base = len(tokens)
    fallback = np.full(floats.shape, -1, np.int64)
    if not fast.all():
        odd = ~fast
        tokens += _encode(floats[odd].tolist())[1:-1].split(b",")
        fallback[odd] = odd_base + np.arange(int(odd.sum()))
    country = np.where(table.country >= 0, table.country, len(table.country_ids))
    picks = np.column_stack((table.status.astype(np.int64), country_base + country, sensor_base + sensor_pick))
    token_buffer, token_offsets = _concatenated(tokens)
    fragment_buffer, fragment_offsets = _concatenated(_fragments(start, table.node_id))
    token_lengths = np.diff(token_offsets)
    size = (n * (int(np.diff(fragment_offsets)[1:-1].sum()) + _FLOAT_BYTES * floats.shape[1] + 24)
            + int(token_lengths[picks].sum()) + int(token_lengths[odd_base:].sum()) + fragment_buffer.size)
    out = np.empty(size, np.uint8)
    end = _write_tracks(out, floats, _DECIMALS, fallback, table.track_id.astype(np.int64), picks, _SLOT_KIND,
                        _SLOT_COLUMN, _MIRROR, fragment_buffer, fragment_offsets, token_buffer, token_offsets, _POW10, _QUADS)
    return out[:end].tobytes()


def _compile() -> None:
    """Render two tracks, one with a number for each path (digits, msgspec): compiles the kernel."""
    n = 2
    zeros = np.zeros(n)
    table = SnapshotTable(
        node_id="warm-up", t=0.0, track_id=np.arange(n), status=np.zeros(n, np.int8), lat=zeros, lon=zeros,
        east_m=np.array([1.5, np.nan]), north_m=zeros, vel_east_mps=zeros, vel_north_mps=zeros, speed_mps=zeros,
        heading_deg=zeros, position_sigma_m=zeros, covariance=np.zeros((n, 4, 4)), existence=zeros,
        class_prob=np.zeros((n, len(CLASSES))), country=np.array([0, -1]), country_ids=("a",),
        sensor_bits=np.ones((n, 1), bool), sensor_ids=("s",), first_seen=zeros, last_update=zeros)
    snapshot_json(table)


def warm_up_kernels(extra=(), progress=sys.stderr) -> float:
    """Compile (or load) the tracker's and the renderer's kernels, then run the ``extra`` stages
    ((label, callable): e.g. building the pipeline, which compiles the geofence's), with progress on
    ``progress`` when the cache is cold (:func:`tracking.warmup.warm_up`); returns the seconds taken."""
    cold = cache_is_cold() or cache_is_cold(Path(__file__).parent, ("render",))
    return warm_up(extra=[("snapshot rendering", _compile), *extra], progress=progress, cold=cold)


# -- the kernel ---------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _copy(out, pos, buffer, offsets, k):
    for b in range(offsets[k], offsets[k + 1]):
        out[pos] = buffer[b]
        pos += 1
    return pos


@njit(cache=True, inline="always")
def _write_quad(out, pos, quads, group, digits):
    """The last ``digits`` (1–4) of the 4-digit text of ``group`` (0–9999)."""
    for d in range(4 - digits, 4):
        out[pos] = quads[group, d]
        pos += 1
    return pos


@njit(cache=True, inline="always")
def _write_int(out, pos, value, quads):
    """``value`` in decimal, four digits per division (a chain of divisions is the cost)."""
    if value < 0:
        out[pos] = 45  # '-'
        pos += 1
        value = -value
    if value < 10_000:
        return _write_quad(out, pos, quads, value, quads[value, 4])
    if value < 100_000_000:
        high = value // 10_000
        pos = _write_quad(out, pos, quads, high, quads[high, 4])
        return _write_quad(out, pos, quads, value - high * 10_000, 4)
    groups = np.empty(5, np.int64)  # the rare long number: groups from the right
    count = 0
    while value >= 10_000:
        rest = value // 10_000
        groups[count] = value - rest * 10_000
        count += 1
        value = rest
    pos = _write_quad(out, pos, quads, value, quads[value, 4])
    for g in range(count - 1, -1, -1):
        pos = _write_quad(out, pos, quads, groups[g], 4)
    return pos


@njit(cache=True, inline="always")
def _write_fraction(out, pos, fraction, decimals, pow10, quads):
    """The ``decimals`` digits of ``fraction`` (0 < fraction < 10ᵈ), less its trailing zeros."""
    if decimals <= 4:
        return _write_head(out, pos, quads, fraction * pow10[4 - decimals])
    high = fraction // 1_000 if decimals == 7 else fraction // pow10[decimals - 4]  # 4 digits, then up to 4 more
    low = (fraction - high * pow10[decimals - 4]) * pow10[8 - decimals]
    if low == 0:
        return _write_head(out, pos, quads, high)
    pos = _write_quad(out, pos, quads, high, 4)
    return _write_head(out, pos, quads, low)


@njit(cache=True, inline="always")
def _write_head(out, pos, quads, group):
    """The 4-digit text of ``group`` (≠ 0) less its trailing zeros."""
    for d in range(4 - quads[group, 5]):
        out[pos] = quads[group, d]
        pos += 1
    return pos


@njit(cache=True, inline="always")
def _write_float(out, pos, value, decimals, pow10, quads):
    """A fast-path float (see _fast_floats): k = |v|·10ᵈ as digits with the point d places in,
    trailing zeros of the fraction dropped but one."""
    if value < 0.0 or (value == 0.0 and math.copysign(1.0, value) < 0.0):
        out[pos] = 45  # '-'
        pos += 1
    scale = pow10[decimals]
    k = np.int64(abs(value) * scale + 0.5)
    # division by a constant is a multiply and a shift; by a variable, tens of cycles
    if decimals == 4:
        whole = k // 10_000
    elif decimals == 3:
        whole = k // 1_000
    elif decimals == 2:
        whole = k // 100
    elif decimals == 7:
        whole = k // 10_000_000
    else:
        whole = k // scale
    fraction = k - whole * scale
    pos = _write_int(out, pos, whole, quads)
    out[pos] = 46  # '.'
    if fraction == 0:
        out[pos + 1] = 48
        return pos + 2
    return _write_fraction(out, pos + 1, fraction, decimals, pow10, quads)


@njit(cache=True)
def _write_tracks(out, floats, decimals, fallback, ints, picks, slot_kind, slot_column, mirror, fragments,
                  fragment_offsets, tokens, token_offsets, pow10, quads):
    """Every track object, fixed text and values interleaved; returns the length written."""
    n, slots = floats.shape[0], slot_kind.size
    span = np.zeros((slots, 2), np.int64)  # where each value of the current track was written
    pos = _copy(out, 0, fragments, fragment_offsets, 0)
    for i in range(n):
        for j in range(slots):
            kind, c = slot_kind[j], slot_column[j]
            start = pos
            if kind == 0:  # _FLOAT (1: _INT, 2: _PICK)
                twin = mirror[j]
                if fallback[i, c] >= 0:
                    pos = _copy(out, pos, tokens, token_offsets, fallback[i, c])
                elif (twin >= 0 and floats[i, c] == floats[i, slot_column[twin]]
                      and math.copysign(1.0, floats[i, c]) == math.copysign(1.0, floats[i, slot_column[twin]])
                      and fallback[i, slot_column[twin]] < 0):
                    for b in range(span[twin, 0], span[twin, 1]):  # the same number (and sign): the same text
                        out[pos] = out[b]
                        pos += 1
                else:
                    pos = _write_float(out, pos, floats[i, c], decimals[c], pow10, quads)
            elif kind == 1:
                pos = _write_int(out, pos, ints[i], quads)
            else:
                pos = _copy(out, pos, tokens, token_offsets, picks[i, c])
            span[j, 0], span[j, 1] = start, pos
            if j < slots - 1:
                pos = _copy(out, pos, fragments, fragment_offsets, 1 + j)
        pos = _copy(out, pos, fragments, fragment_offsets, slots + (1 if i == n - 1 else 0))
    return pos
