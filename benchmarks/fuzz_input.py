"""Fuzz the input side: hostile messages through the pipeline, corrupt logs through replay.

Messages: valid payloads of the demo site's simulator, mutated (bytes flipped,
inserted, deleted or cut; a value replaced by one of the wrong type; NaN, ±inf,
huge numbers; deep nesting; invalid UTF-8; oversize), plus random bytes and random
JSON, each fed to :meth:`fusion.pipeline.Pipeline.feed` — the path of ``run`` and
``replay``.  A crash is any exception out of ``feed``; every message must come out
as accepted or as a rejection with a reason.

Logs: a short simulated log, corrupted (cut short, bytes flipped, garbage lines,
plain/gzip swapped, emptied), replayed with :func:`fusion.replay.replay_file`.  A
crash is any exception but :class:`~fusion.logio.LogError` (the clean stop for a
file that is no log of ours, e.g. a destroyed header).

Seeded; prints one JSON object:

    python benchmarks/fuzz_input.py [--messages 10000] [--logs 120] [--seed 0]

The mutators are pure functions of a ``random.Random`` and the input, shared with
``tests/test_fuzz.py`` (which drives them from hypothesis).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

__all__ = ["mutate_payload", "random_json", "corrupt_log", "MUTATIONS", "LOG_CORRUPTIONS", "DEEP"]

SITE = Path(__file__).resolve().parent.parent / "configs" / "demo" / "site.toml"
DEEP = 1100  # deeper than msgspec's recursion limit (the interpreter's, 1000)
_NASTY_BYTES = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b'"', b"\\", b"{", b"]", b",", b"\xf0\x9f\x98"]
_NASTY_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"-0", b"1" * 400, b"9" * 5000,
                  b"4.9e-324", b"1.7976931348623157e308", b"-9223372036854775809", b"18446744073709551616"]


def _wrong_value(rng: random.Random):
    return rng.choice([None, True, False, "text", "", 0, -1, 1.5, -1e308, 10**30, -(10**30), [], {}, [1, "a"],
                       {"a": None}, "\ud800", "NaN", 1e-320])


def _paths(document, prefix=()):
    """Every (path) into a decoded JSON document, the root excluded."""
    if isinstance(document, dict):
        items = document.items()
    elif isinstance(document, list):
        items = enumerate(document)
    else:
        return
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


def _replace(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _retype(rng: random.Random, payload: bytes) -> bytes:
    document = json.loads(payload)
    paths = list(_paths(document))
    if not paths:
        return b"[" + payload + b"]"
    _replace(document, rng.choice(paths), _wrong_value(rng))
    return json.dumps(document, allow_nan=True, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def _number(rng: random.Random, payload: bytes) -> bytes:
    document = json.loads(payload)
    numbers = [p for p in _paths(document) if isinstance(_get(document, p), (int, float))
               and not isinstance(_get(document, p), bool)]
    if not numbers:
        return payload
    marker = "\u2603MARK\u2603"
    _replace(document, rng.choice(numbers), marker)
    return json.dumps(document).encode().replace(json.dumps(marker).encode(), rng.choice(_NASTY_NUMBERS))


def _get(document, path):
    for key in path:
        document = document[key]
    return document


def _deep(rng: random.Random, payload: bytes) -> bytes:
    depth = rng.choice([DEEP, DEEP * 3, 900, 5000])
    opener, closer = (b"[", b"]") if rng.random() < 0.5 else (b'{"a":', b"}")
    nested = opener * depth + (b"1" if opener != b"[" else b"") + closer * depth
    if rng.random() < 0.3:
        nested = nested[: rng.randrange(len(nested))]  # unbalanced as well
    cut = payload.rfind(b"}")
    return payload[:cut] + b',"deep":' + nested + payload[cut:] if cut > 0 else nested


def _invalid_utf8(rng: random.Random, payload: bytes) -> bytes:
    quotes = [i for i, b in enumerate(payload) if b == 0x22]
    at = rng.choice(quotes) + 1 if quotes else rng.randrange(len(payload) + 1)
    return payload[:at] + rng.choice(_NASTY_BYTES[:3] + [b"\x80", b"\xfe\xff", b"\xc0\xaf"]) + payload[at:]


def _flip(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _insert(rng: random.Random, payload: bytes) -> bytes:
    at = rng.randrange(len(payload) + 1)
    return payload[:at] + rng.choice(_NASTY_BYTES + [bytes(rng.randrange(256) for _ in range(8))]) + payload[at:]


def _delete(rng: random.Random, payload: bytes) -> bytes:
    start = rng.randrange(len(payload) + 1)
    return payload[:start] + payload[start + rng.randint(1, 40):]


def _cut(rng: random.Random, payload: bytes) -> bytes:
    return payload[: rng.randrange(len(payload) + 1)]


def _oversize(rng: random.Random, payload: bytes) -> bytes:
    cut = payload.rfind(b"}")
    return payload[:cut] + b',"pad":"' + b"x" * rng.choice([200_000, 300_000]) + b'"' + payload[cut:]


MUTATIONS = {"retype": _retype, "number": _number, "deep": _deep, "invalid_utf8": _invalid_utf8, "flip": _flip,
             "insert": _insert, "delete": _delete, "cut": _cut, "oversize": _oversize}


def mutate_payload(rng: random.Random, payload: bytes) -> tuple[str, bytes]:
    """One to three mutations of a valid payload; returns their names and the result."""
    names = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        name = rng.choice(list(MUTATIONS))
        try:
            payload = MUTATIONS[name](rng, payload)
        except (ValueError, RecursionError):  # an earlier mutation left no JSON to retype: mutate the bytes
            name, payload = "flip", _flip(rng, payload)
        names.append(name)
    return "+".join(names), payload


def random_json(rng: random.Random, depth: int = 0):
    """A random JSON value; near the top often an object with the inputs' field names."""
    keys = ["sensor_id", "t", "seq", "plots", "range_m", "azimuth_deg", "detections", "lat", "lon", "cep_m",
            "classification", "person", "platform", "bearing_deg", "modality"]
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return _wrong_value(rng)
    if roll < 0.7:
        return {rng.choice(keys) if rng.random() < 0.8 else str(rng.random()): random_json(rng, depth + 1)
                for _ in range(rng.randint(0, 6))}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]


# -- corrupt logs ----------------------------------------------------------------------------
def _log_cut(rng, data, gz):
    return data[: rng.randrange(len(data))], gz


def _log_flip(rng, data, gz):
    return _flip(rng, data), gz


def _log_garbage_lines(rng, data, gz):
    plain = gzip.decompress(data) if gz else data
    lines = plain.splitlines(keepends=True)
    for _ in range(rng.randint(1, 5)):
        junk = rng.choice([b"garbage", b"\xff\xfe", b"{}", b'{"t_rx":"x","topic":1,"payload":{}}',
                           b'{"tst":"not-a-time","topic":"x","payload":{}}', b"[" * DEEP + b"]" * DEEP,
                           b'{"t_rx":1e400,"topic":"t","payload":{}}', b'{"t_rx":1.0,"topic":"t\xff","payload":{}}',
                           b'{"t_rx":1.0,"topic":"t","payload":"\\ud800"}', b"\x00" * 100])
        lines.insert(rng.randrange(len(lines) + 1), junk + b"\n")
    plain = b"".join(lines)
    return (gzip.compress(plain) if gz else plain), gz


def _log_swap_compression(rng, data, gz):
    return (gzip.decompress(data) if gz else gzip.compress(data)), gz  # the name keeps the old suffix


def _log_empty(rng, data, gz):
    return b"", gz


def _log_concatenated(rng, data, gz):
    return data + data, gz  # a second header in the middle


LOG_CORRUPTIONS = {"cut": _log_cut, "flip": _log_flip, "garbage_lines": _log_garbage_lines,
                   "swap_compression": _log_swap_compression, "empty": _log_empty,
                   "concatenated": _log_concatenated}


def corrupt_log(rng: random.Random, data: bytes, gz: bool) -> tuple[str, bytes]:
    """One corruption of a log file's bytes (``gz``: the bytes are gzip); returns its name and the bytes."""
    name = rng.choices(list(LOG_CORRUPTIONS), weights=[4, 3, 3, 1, 1, 1])[0]
    out, _ = LOG_CORRUPTIONS[name](rng, data, gz)
    return name, out


# -- the run ---------------------------------------------------------------------------------
def _valid_messages(site, folder: Path) -> tuple[list, Path]:
    from fusion.logio import read_log
    from fusion.simulate import simulate

    log = folder / "valid.jsonl.gz"
    simulate(site, 60.0, log, None, seed=1, n_targets=4)
    return [(r.t_rx, r.topic, r.payload) for r in read_log(log, strict=True)], log


def _restamp(payload: bytes, seq: int, t: float) -> bytes:
    document = json.loads(payload)
    document["seq"], document["t"] = seq, t
    return json.dumps(document).encode()


def fuzz_messages(site, valid: list, n: int, rng: random.Random) -> dict:
    from fusion.pipeline import Pipeline

    pipeline = Pipeline(site)
    counts: Counter = Counter()
    crashes: list[str] = []
    topics = sorted({topic for _, topic, _ in valid})
    t_rx = valid[0][0]
    for i in range(n):
        roll = rng.random()
        _, topic, payload = rng.choice(valid)
        t_rx += rng.random() * 0.05
        # fresh seq and time, so that a mutation that keeps the payload valid reaches the tracker
        payload = _restamp(payload, seq=i, t=t_rx - rng.random() * 0.5)
        if roll < 0.1:
            kind, payload = "random_bytes", bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        elif roll < 0.2:
            kind = "random_json"
            payload = json.dumps(random_json(rng), allow_nan=True).encode("utf-8", "surrogatepass")
        elif roll < 0.25:
            kind, payload = "valid", payload
        else:
            kind, payload = mutate_payload(rng, payload)
        if rng.random() < 0.05:
            topic = rng.choice(topics)[: rng.randrange(40)] + rng.choice(["", "x", "/", "\u00e9"])
        counts["messages"] += 1
        try:
            out = pipeline.feed(t_rx, topic, payload)
        except Exception:  # noqa: BLE001 — counting crashes is the point
            counts["crashes"] += 1
            crashes.append(f"{kind}: {traceback.format_exc(limit=3)}")
            continue
        for rejection in out.rejected:
            counts["rejected"] += 1
            if not rejection.reason or ", got null, got" in rejection.reason or "`, got null" in rejection.reason:
                counts["bad_reasons"] += 1
            if rejection.reason.startswith("could not be processed ("):  # ingest's last guard: not foreseen
                counts["unforeseen"] += 1
    counts["accepted"] = pipeline.status(t_rx)["counters"].get("accepted", 0)
    return {"messages": counts["messages"], "crashes": counts["crashes"], "rejected": counts["rejected"],
            "accepted": counts["accepted"], "bad_reasons": counts["bad_reasons"], "unforeseen": counts["unforeseen"],
            "first_crashes": crashes[:3]}


def fuzz_logs(site, valid_log: Path, n: int, rng: random.Random, folder: Path) -> dict:
    from fusion.logio import LogError, LogReport
    from fusion.replay import replay_file

    counts: Counter = Counter()
    crashes: list[str] = []
    gz_data = valid_log.read_bytes()
    plain_data = gzip.decompress(gz_data)
    for i in range(n):
        gz = rng.random() < 0.5
        name, data = corrupt_log(rng, gz_data if gz else plain_data, gz)
        path = folder / f"corrupt-{i}.jsonl{'.gz' if gz else ''}"
        path.write_bytes(data)
        counts["logs"] += 1
        report = LogReport(str(path))
        strict = rng.random() < 0.3
        try:
            replay_file(site, path, progress=False, strict=strict, report=report)
            counts["truncated" if report.truncated else "completed"] += 1
            counts["skipped_lines"] += report.skipped_lines
        except LogError:
            counts["clean_stops"] += 1
        except Exception:  # noqa: BLE001
            counts["crashes"] += 1
            crashes.append(f"{name}: {traceback.format_exc(limit=3)}")
        path.unlink()
    return {"logs": counts["logs"], "crashes": counts["crashes"], "completed": counts["completed"],
            "truncated": counts["truncated"], "clean_stops": counts["clean_stops"],
            "skipped_lines": counts["skipped_lines"], "first_crashes": crashes[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--logs", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import logging

    from fusion.config import load_site

    logging.disable(logging.WARNING)  # the bad lines' warnings are the expected outcome here
    site = load_site(SITE)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        valid, valid_log = _valid_messages(site, Path(tmp))
        messages = fuzz_messages(site, valid, args.messages, rng)
        logs = fuzz_logs(site, valid_log, args.logs, rng, Path(tmp))
    print(json.dumps({"benchmark": "fuzz_input", "seed": args.seed, "messages": messages, "logs": logs,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
