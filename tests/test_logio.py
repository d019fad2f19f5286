import gzip
import json
import types
from datetime import datetime, timezone

import pytest

from fusion.logio import LogError, LogWriter, read_log


@pytest.mark.parametrize("name", ["log.jsonl", "log.jsonl.gz"])
def test_round_trip_plain_and_gzip(tmp_path, name):
    path = tmp_path / name
    messages = [(1.5, "borderfusion/v1/raw/radar/r", b'{"a":1,"b":[1.5,null]}'),
                (2.0, "borderfusion/v1/raw/radar/r", b"not json at all"),
                (2.5, "borderfusion/v1/raw/ground/g", b'{\n  "pretty": true\n}'),
                (3.0, "borderfusion/v1/raw/ground/g", b'"a json string"')]
    with LogWriter(path, "demo") as writer:
        for m in messages:
            writer.write(*m)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        lines = handle.read().splitlines()
    assert json.loads(lines[0]) == {"format": "borderfusion-log", "version": 1, "site": "demo"}
    assert json.loads(lines[2])["payload"] == "not json at all"
    assert len(lines) == 5  # one line per record, the pretty payload folded
    records = list(read_log(path))
    assert [(r.t_rx, r.topic) for r in records] == [(m[0], m[1]) for m in messages]
    assert records[0].payload == messages[0][2]
    assert records[1].payload == b"not json at all"
    assert json.loads(records[2].payload) == {"pretty": True}


def test_reader_streams(tmp_path):
    path = tmp_path / "big.jsonl"
    with LogWriter(path, "s") as writer:
        for i in range(1000):
            writer.write(float(i), "t", b"{}")
    reader = read_log(path)
    assert isinstance(reader, types.GeneratorType)
    assert next(reader).t_rx == 0.0


def test_reads_mosquitto_sub_json_capture(tmp_path):
    path = tmp_path / "capture.jsonl"
    path.write_text(
        '{"tst":"2026-11-22T05:01:59.351646Z+0000","topic":"borderfusion/v1/raw/radar/r","qos":0,'
        '"retain":0,"payloadlen":9,"payload":{"a":1.5}}\n'
        '{"tst":"2026-11-22T05:02:00.000000Z+0000","topic":"x","qos":0,"retain":0,"payloadlen":3,"payload":"abc"}\n')
    records = list(read_log(path))
    assert records[0].t_rx == pytest.approx(datetime(2026, 11, 22, 5, 1, 59, 351646, timezone.utc).timestamp())
    assert json.loads(records[0].payload) == {"a": 1.5}
    assert records[1].payload == b"abc"


@pytest.mark.parametrize("content,expected", [
    ('{"format": "other", "version": 1}\n', "format is 'other'"),
    ('{"format": "borderfusion-log", "version": 2}\n', "log version 2 is not supported"),
    ('{"format": "borderfusion-log", "version": 1}\n{"topic": "a", "payload": {}}\n', ":2: a record needs 't_rx'"),
    ('{"format": "borderfusion-log", "version": 1}\n{broken\n', ":2: not JSON"),
])
def test_bad_logs_name_file_and_line(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(LogError) as info:
        list(read_log(path))
    assert str(path) in str(info.value) and expected in str(info.value)
