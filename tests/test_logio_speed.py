"""The log reader streams: a generator whose memory does not grow with the log."""

from __future__ import annotations

import gzip
import inspect
import tracemalloc

import msgspec

from fusion.logio import LOG_FORMAT, LOG_VERSION, read_log


def write_log(path, records: int) -> int:
    """A gzip log of ``records`` radar-like lines (~600 bytes each); returns its uncompressed size."""
    encode = msgspec.json.encode
    size = 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        for line in [encode({"format": LOG_FORMAT, "version": LOG_VERSION, "site": "s"})]:
            out.write(line + b"\n")
        for k in range(records):
            payload = {"sensor_id": "radar-1", "t": 1.7e9 + k, "detections": [
                {"range_m": 1000.0 + i + k % 97, "azimuth_deg": 10.0 * i, "rcs_dbsm": 1.5, "snr_db": 20.0}
                for i in range(6)]}
            line = encode({"t_rx": 1.7e9 + k + 0.05, "topic": "bf/edge-1/raw/radar/radar-1", "payload": payload})
            out.write(line + b"\n")
            size += len(line) + 1
    return size


def test_reader_is_a_generator_in_constant_memory(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    size = write_log(path, 30_000)
    assert size > 10_000_000
    records = read_log(path)
    assert inspect.isgenerator(records)
    tracemalloc.start()
    try:
        count, payload_bytes = 0, 0
        for record in records:
            count += 1
            payload_bytes += len(record.payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000 and payload_bytes > 0.8 * size
    assert peak < 1_000_000, f"reading a {size / 1e6:.0f} MB log peaked at {peak / 1e6:.1f} MB of Python memory"


def test_payload_bytes_are_the_recorded_bytes(tmp_path):
    """Passed through as recorded (not decoded and re-encoded): spacing and key order survive."""
    path = tmp_path / "log.jsonl"
    payload = b'{ "t" : 1.50,  "sensor_id":"g-1" ,"z":[1, 2]}'
    path.write_bytes(b'{"format":"borderfusion-log","version":1}\n{"t_rx": 3.0, "topic": "a/b", "payload": '
                     + payload + b"}\n")
    (record,) = list(read_log(path))
    assert record.payload == payload
