"""The numba kernel that writes a snapshot's track objects (interface §3.1) into a byte buffer.

Private to :mod:`fusion.render`, which prepares its inputs: the float columns in wire
order, the fixed text around the values (keys, braces), and the few strings the
tracks pick from (status, country, sensor list; the rare float msgspec must write).

A float rounded to d decimals (and on the fast path, see
:func:`fusion.render.fast_floats`) is written as msgspec writes it: the integer
k = |v|·10ᵈ (exact to ½ after the rounding, so ``int(|v|·10ᵈ + ½)``) split into
k // 10ᵈ and k mod 10ᵈ, the point between, the fraction's trailing zeros dropped but
one ("1.5", "2.0", "-0.0").  Each call names d and 10ᵈ as literals, so after
inlining the division is by a constant (a multiply and a shift, not ~40 cycles);
digits go two at a time from a table of "00"…"99".  The track loop is written out
field by field, not driven by a table of slots: no per-value dispatch.

Cost (10,000 tracks, 5.5 MB of JSON): ~0.6 µs per track on a busy 2-core box.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["BLOCK", "DIGIT_PAIRS", "write_tracks"]

#: "00" "01" … "99" as 200 ASCII bytes
DIGIT_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), np.uint8).copy()

_MINUS, _POINT, _ZERO = 45, 46, 48


#: bytes copied at once by :func:`_copy_block`: ``out`` and every buffer copied from have this much to spare
BLOCK = 32


@intrinsic
def _copy_block(typingctx, out, pos, source, start):
    """``out[pos:pos + BLOCK] = source[start:start + BLOCK]`` as one unaligned vector load and store,
    unchecked (the caller keeps both in bounds)."""
    signature = types.void(out, pos, source, start)

    def codegen(context, builder, sig, args):
        block = ir.VectorType(ir.IntType(8), BLOCK).as_pointer()
        target = context.make_array(sig.args[0])(context, builder, args[0])
        origin = context.make_array(sig.args[2])(context, builder, args[2])
        value = builder.load(builder.bitcast(builder.gep(origin.data, [args[3]]), block), align=1)
        builder.store(value, builder.bitcast(builder.gep(target.data, [args[1]]), block), align=1)
        return context.get_dummy_value()

    return signature, codegen


@njit(cache=True, inline="always")
def _copy(out, pos, buffer, offsets, k):
    """Piece ``k`` of ``buffer`` (``buffer[offsets[k]:offsets[k + 1]]``) at ``pos``; up to BLOCK bytes
    past its end may be overwritten (by bytes written later)."""
    start, stop = offsets[k], offsets[k + 1]
    if stop - start <= BLOCK:
        _copy_block(out, pos, buffer, start)
        return pos + stop - start
    for b in range(start, stop):
        out[pos] = buffer[b]
        pos += 1
    return pos


@njit(cache=True, inline="always")
def _digit_count(value):
    """Decimal digits of ``value`` (uint64)."""
    count = 1
    while value >= 100:
        value //= np.uint64(100)
        count += 2
    return count + (1 if value >= 10 else 0)


@njit(cache=True, inline="always")
def _write_digits(out, end, value, count, pairs):
    """The ``count`` last decimal digits of ``value`` (uint64, zero-padded), ending before ``end``."""
    p = end
    for _ in range(count // 2):
        rest = value // np.uint64(100)
        pair = 2 * np.int64(value - rest * np.uint64(100))
        p -= 2
        out[p] = pairs[pair]
        out[p + 1] = pairs[pair + 1]
        value = rest
    if count & 1:
        out[p - 1] = _ZERO + np.int64(value % np.uint64(10))


@njit(cache=True, inline="always")
def _write_int(out, pos, value, pairs):
    """``value`` (int64) in decimal, as msgspec writes an int (−2⁶³ too: the magnitude is unsigned)."""
    out[pos] = _MINUS  # kept when negative
    magnitude = np.uint64(value)
    if value < 0:
        magnitude = np.uint64(0) - magnitude
        pos += 1
    return _write_uint(out, pos, magnitude, pairs)


@njit(cache=True, inline="always")
def _write_uint(out, pos, value, pairs):
    """``value`` (uint64) in decimal."""
    count = _digit_count(value)
    _write_digits(out, pos + count, value, count, pairs)
    return pos + count


@njit(cache=True, inline="always")
def _write_float(out, pos, value, decimals, unit, pairs):
    """A float rounded to ``decimals`` (``unit`` = 10ᵈ, both literals at the call); −1 for a value
    off the fast path (NaN, ±inf, tiny, huge: the test of ``fusion.render._fast_floats``), which
    the caller copies from msgspec's text instead.

    Arrays other than ``out`` and ``pairs`` stay out of here: any other array on the rare path
    costs the common one 3× (measured; numba's reference counting of the inlined arguments)."""
    magnitude = abs(value)
    if not (magnitude * unit < 1e15 and (magnitude >= 1e-4 or magnitude == 0.0)):
        return -1
    out[pos] = _MINUS  # kept when negative or −0.0 (msgspec writes "-0.0"), overwritten otherwise
    pos += np.int64(np.signbit(value))
    k = np.uint64(magnitude * unit + 0.5)  # unsigned: a division by a constant without sign fix-ups
    whole = k // np.uint64(unit)
    fraction = k - whole * np.uint64(unit)
    pos = _write_uint(out, pos, whole, pairs)
    out[pos] = _POINT
    if fraction == 0:
        out[pos + 1] = _ZERO
        return pos + 2
    end = pos + 1 + decimals
    _write_digits(out, end, fraction, decimals, pairs)
    while out[end - 1] == _ZERO:  # fraction ≠ 0: stops at a digit ≥ 1
        end -= 1
    return end


@njit(cache=True)
def write_tracks(out, floats, decimals, track_id, picks, fragments, fragment_offsets, tokens, token_offsets,
                 odd_tokens, odd_offsets, pairs):
    """Every track object, fixed text and values interleaved into ``out``; returns the length written,
    or −1 when a float off the fast path has no text left in ``odd_tokens`` (msgspec's texts of those
    floats, in wire order).

    ``floats`` (n, 33): the float fields in wire order (9 numbers, 16 covariance entries, existence,
    5 class probabilities, first_seen, last_update), rounded to ``decimals`` (7 7 2 2 3 3 3 2 2,
    4 × 22, 3 3: checked here, the kernel names them as literals); ``picks`` (n, 3): token of status,
    country, sensor list.  ``fragments`` piece 0 opens the snapshot and the first track id, piece j
    (1 ≤ j ≤ 36) follows value j − 1 of a track, piece 37 goes between tracks, 38 closes.
    """
    for c in range(33):
        if decimals[c] != (7 if c < 2 else 2 if c < 4 or 7 <= c < 9 else 3 if c < 7 or c >= 31 else 4):
            return -2
    n = floats.shape[0]
    odd = 0
    pos = _copy(out, 0, fragments, fragment_offsets, 0)
    for i in range(n):
        pos = _write_int(out, pos, track_id[i], pairs)
        pos = _copy(out, pos, fragments, fragment_offsets, 1)
        pos = _copy(out, pos, tokens, token_offsets, picks[i, 0])  # status
        for c in range(33):
            if c == 31:
                pos = _copy(out, pos, fragments, fragment_offsets, 33)
                pos = _copy(out, pos, tokens, token_offsets, picks[i, 1])  # jurisdiction
                pos = _copy(out, pos, fragments, fragment_offsets, 34)
                pos = _copy(out, pos, tokens, token_offsets, picks[i, 2])  # sensors
            start = pos = _copy(out, pos, fragments, fragment_offsets, 2 + c + (2 if c >= 31 else 0))
            value = floats[i, c]
            if c < 2:  # lat, lon
                pos = _write_float(out, pos, value, 7, 10_000_000, pairs)
            elif c < 4 or 7 <= c < 9:  # east_m, north_m; heading_deg, position_sigma_m
                pos = _write_float(out, pos, value, 2, 100, pairs)
            elif c < 7 or c >= 31:  # velocities, speed; first_seen, last_update
                pos = _write_float(out, pos, value, 3, 1_000, pairs)
            else:  # covariance, existence, classification
                pos = _write_float(out, pos, value, 4, 10_000, pairs)
            if pos < 0:
                if odd + 1 >= odd_offsets.size:
                    return -1
                pos = _copy(out, start, odd_tokens, odd_offsets, odd)
                odd += 1
        pos = _copy(out, pos, fragments, fragment_offsets, 38 if i == n - 1 else 37)
    return pos
