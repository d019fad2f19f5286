"""Track snapshots (interface §3.1) rendered from arrays, with no Python per track.

A snapshot of n tracks is first a :class:`SnapshotTable`: every field as a column,
computed and rounded as arrays (lat/lon in one pyproj call, σ from a closed form
equal to ``eigvalsh``, the country from one containment pass, the sensors from the bitmask).
From the table, two renderings:

* :func:`snapshot_json`, the wire form, written by one numba pass into a byte
  buffer (:mod:`fusion.render_kernels`): the fixed text (keys, braces) and the values interleaved.  Numbers rounded
  to d decimals are written as integer digits (see :func:`_fast_floats` for why that
  is exactly msgspec's shortest round-trip text); the rare others (NaN, ±inf, tiny,
  huge) and the strings that take few values (status, country, the sensor list of a
  bitmask) are encoded by msgspec once and copied.  The bytes are those of
  ``msgspec.json.encode(snapshot dict)`` (tested against that renderer).
* Parquet rows (:mod:`fusion.parquet`), one per track, straight from the columns.

Cost (2-core box, busy; ``benchmarks/replay_throughput.py``): columns ~0.4 µs and JSON
~0.7 µs per track (10,000 tracks: ~3.7 + ~7 ms of CPU), against ~40 µs per track for the
dict per track it replaced.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from fusion.render_kernels import BLOCK, DIGIT_PAIRS, PAIR_WORDS, WireFloats, write_tracks
from tracking.tracker import STATUS_NAMES
from tracking.warmup import cache_is_cold, warm_up

__all__ = ["CLASSES", "SnapshotTable", "snapshot_table", "largest_eigenvalue_2x2", "snapshot_json", "sensor_lists_json",
           "warm_up_kernels"]

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
    axis (:func:`largest_eigenvalue_2x2`).  Rounding (decimals): lat/lon 7 (~1 cm), metres 2, m/s 3, degrees 2, σ 2,
    covariance and probabilities 4, times 3.
    """
    x, P = estimates.x, estimates.P
    ve, vn = x[:, 2], x[:, 3]
    sigma = np.sqrt(np.maximum(0.0, largest_eigenvalue_2x2(P[:, :2, :2])))
    return SnapshotTable(
        node_id=node_id, t=round(t, 3), track_id=estimates.track_id, status=estimates.status,
        lat=np.round(lat, 7), lon=np.round(lon, 7), east_m=np.round(x[:, 0], 2), north_m=np.round(x[:, 1], 2),
        vel_east_mps=np.round(ve, 3), vel_north_mps=np.round(vn, 3), speed_mps=np.round(np.hypot(ve, vn), 3),
        heading_deg=np.round(np.degrees(np.arctan2(ve, vn)) % 360.0, 2), position_sigma_m=np.round(sigma, 2),
        covariance=np.round(P, 4), existence=np.round(estimates.existence, 4),
        class_prob=np.round(estimates.class_prob, 4), country=country, country_ids=country_ids,
        sensor_bits=sensor_bits, sensor_ids=sensor_ids, first_seen=np.round(estimates.first_seen, 3),
        last_update=np.round(estimates.last_update, 3))


def largest_eigenvalue_2x2(matrices: np.ndarray) -> np.ndarray:
    """The largest eigenvalue of each symmetric 2×2 matrix (its lower triangle read), bit for bit
    what ``np.linalg.eigvalsh(matrices)[:, -1]`` returns, at 1/6 of its cost (no LAPACK call per matrix).

    LAPACK's ``dsyevd`` without vectors hands a 2×2 (already tridiagonal: d = (a, c), e = b)
    to ``dsterf``, which takes a, c as they are when b is negligible (|b| ≤ √|a|·√|c|·ε, ε = 2⁻⁵³)
    and otherwise calls ``dlae2``: with s = a + c, Δ = |a − c|, t = 2|b|,
    r = max(Δ, t)·√(1 + (min/max)²) (t·√2 when equal), the eigenvalue of larger magnitude is
    λ₁ = (s ± r)/2 with the sign of s (r/2 when s = 0) and the other λ₂ = (a_max/λ₁)·a_min − (b/λ₁)·b
    (a_max, a_min: a and c ordered by magnitude; −r/2 when s = 0).  The same operations in the same
    order give the same doubles (checked on millions of matrices in tests/test_render.py); non-finite
    input gives NaN here (LAPACK's answer for it is arbitrary).
    """
    a, c, b = matrices[:, 0, 0], matrices[:, 1, 1], np.abs(matrices[:, 1, 0])
    with np.errstate(all="ignore"):
        total = a + c
        spread, twice_b = np.abs(a - c), b + b
        root = np.where(spread > twice_b, spread * np.sqrt(1.0 + (twice_b / spread) ** 2),
                        np.where(spread < twice_b, twice_b * np.sqrt(1.0 + (spread / twice_b) ** 2),
                                 twice_b * np.sqrt(2.0)))
        a_larger = np.abs(a) > np.abs(c)
        big, small = np.where(a_larger, a, c), np.where(a_larger, c, a)
        first = np.where(total < 0, 0.5 * (total - root), np.where(total > 0, 0.5 * (total + root), 0.5 * root))
        second = np.where(total != 0, (big / first) * small - (b / first) * b, -0.5 * root)
        negligible = b <= np.sqrt(np.abs(a)) * np.sqrt(np.abs(c)) * 2.0 ** -53
        return np.where(negligible, np.maximum(a, c), np.maximum(first, second))


# -- JSON -----------------------------------------------------------------------------------
def _key(name: str) -> bytes:
    return _encode(name) + b":"


_NUMBERS_BEFORE = ("lat", "lon", "east_m", "north_m", "vel_east_mps", "vel_north_mps", "speed_mps", "heading_deg",
                   "position_sigma_m")
#: decimals of every float column, in wire order: the 9 above, covariance (16), existence, classes (5), times (2)
_DECIMALS = np.array([7, 7, 2, 2, 3, 3, 3, 2, 2] + [4] * 16 + [4] + [4] * 5 + [3, 3], np.int64)
#: bytes of a fast-path float's text at most: sign, 15 digits, point (and to spare)
_FLOAT_BYTES = 24


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
    assert len(after) == 36  # one after each value of a track but its last (write_tracks numbers them)
    return [start + head, *after, b"}," + head, b"}]}"]


def _concatenated(pieces: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(bytes as uint8, offsets): piece i is ``buffer[offsets[i]:offsets[i + 1]]``; BLOCK bytes to spare
    after the last (the kernel copies BLOCK bytes at once).  The buffer is read-only (numba compiles
    one kernel per argument type: every byte buffer passed to it comes from here)."""
    offsets = np.zeros(len(pieces) + 1, np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(b"".join(pieces) + bytes(BLOCK), np.uint8), offsets


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


def _wire_matrix(table: SnapshotTable) -> np.ndarray:
    """(n, 33): the float values of each track object in wire order (as :class:`WireFloats` lists them)."""
    n = len(table)
    return np.concatenate([getattr(table, name).reshape(n, -1) for name in WireFloats._fields], axis=1)


def snapshot_json(table: SnapshotTable) -> bytes:
    """The snapshot as interface §3.1 JSON bytes, equal to msgspec's encoding of its dict form."""
    n = len(table)
    start = _encode({"node_id": table.node_id, "t": table.t, "tracks": []})[:-2]  # ends '"tracks":['
    if n == 0:
        return start + b"]}"
    floats = WireFloats(*(np.ascontiguousarray(getattr(table, name), np.float64) for name in WireFloats._fields))
    # the token table: statuses, countries and null, sensor lists
    sensor_texts, sensor_pick = sensor_lists_json(table.sensor_bits, table.sensor_ids)
    tokens = [_encode(name) for name in STATUS_NAMES]
    country_base = len(tokens)
    tokens += [_encode(c) for c in table.country_ids] + [b"null"]
    sensor_base = len(tokens)
    tokens += sensor_texts
    country = np.where(table.country >= 0, table.country, len(table.country_ids))
    picks = np.column_stack((table.status.astype(np.int64), country_base + country, sensor_base + sensor_pick))
    token_buffer, token_offsets = _concatenated(tokens)
    fragment_buffer, fragment_offsets = _concatenated(_fragments(start, table.node_id))
    size = (n * (int(np.diff(fragment_offsets)[1:-1].sum()) + _FLOAT_BYTES * (_DECIMALS.size + 1))
            + int(np.diff(token_offsets)[picks].sum()) + fragment_buffer.size + BLOCK)
    out = np.empty(size, np.uint8)
    track_id = table.track_id.astype(np.int64)
    args = (floats, _DECIMALS, track_id, picks, fragment_buffer, fragment_offsets, token_buffer, token_offsets)
    end = write_tracks(out, *args, *_concatenated([]), DIGIT_PAIRS, PAIR_WORDS)  # no odd floats' texts yet
    assert end != -2, "fusion.render._DECIMALS and fusion.render_kernels.write_tracks disagree"
    if end < 0:  # some float msgspec must write (NaN, ±inf, tiny, huge): their texts, in wire order
        matrix = _wire_matrix(table)
        odd_texts = _encode(matrix[~_fast_floats(matrix, _DECIMALS)].tolist())[1:-1].split(b",")
        odd_buffer, odd_offsets = _concatenated(odd_texts)
        out = np.empty(size + odd_buffer.size, np.uint8)
        end = write_tracks(out, *args, odd_buffer, odd_offsets, DIGIT_PAIRS, PAIR_WORDS)
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


def warm_up_kernels(extra=(), progress=sys.stderr, rendering: bool = True) -> float:
    """Compile (or load) the tracker's and the renderer's kernels, then run the ``extra`` stages
    ((label, callable): e.g. building the pipeline, which compiles the geofence's), with progress on
    ``progress`` when the cache is cold (:func:`tracking.warmup.warm_up`); returns the seconds taken.

    ``rendering=False``: not the renderer's (a replay that writes no JSON snapshot never runs it;
    loading it from the cache costs ~20 ms)."""
    cold = cache_is_cold() or (rendering and cache_is_cold(Path(__file__).parent, ("render_kernels",)))
    stages = [("snapshot rendering", _compile)] if rendering else []
    return warm_up(extra=[*stages, *extra], progress=progress, cold=cold)
