import gzip
import json
import types
from datetime import datetime, timezone

import pytest

import fusion.logio
from fusion.logio import LogError, LogReport, LogWriter, read_log


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


HEADER = b'{"format": "borderfusion-log", "version": 1}\n'
GOOD = b'{"t_rx": 1.0, "topic": "a", "payload": {"k": 1}}\n'
DEEP = 1100  # deeper than msgspec's recursion limit


@pytest.mark.parametrize("content,expected", [
    (HEADER + b'{"topic": "a", "payload": {}}\n', ":2: a record needs 't_rx'"),
    (HEADER + b"{broken\n", ":2: not JSON"),
    (HEADER + b'{"t_rx": "soon", "topic": "a", "payload": {}}\n', ':2: not a log record: t_rx: expected `float | null`, got `str` "soon"'),
    (HEADER + b'{"t_rx": 1e400, "topic": "a", "payload": {}}\n', ":2: not a log record: t_rx:"),
    (b'{"tst":"2026-13-45T99:01:59Z+0000","topic":"a","payload":{}}\n', ":1: tst: expected an ISO time"),
    (HEADER + b'{"t_rx": 1.0, "topic": "a\xff", "payload": {}}\n', ":2: not JSON: invalid UTF-8 at byte 25"),
    (HEADER + b'{"t_rx": 1.0, "topic": "a", "payload": ' + b"[" * DEEP + b"]" * DEEP + b"}\n", ":2: not JSON we accept: arrays/objects nested deeper"),
    (HEADER + b'{"t_rx": 1.0, "topic": "a", "payload": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}\n", ":2: not JSON we accept"),
])
def test_bad_lines_name_file_and_line(tmp_path, content, expected):
    """Strict: the first bad line stops the read; lenient (default): it is skipped, counted and named."""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content + GOOD)
    with pytest.raises(LogError) as info:
        list(read_log(path, strict=True))
    assert str(path) in str(info.value) and expected in str(info.value)
    report = LogReport(str(path))
    records = list(read_log(path, report=report))
    assert [r.payload for r in records] == [b'{"k": 1}']
    assert report.skipped_lines == 1 and report.complete
    assert report.problems[0].startswith(str(path)) and expected in report.problems[0]


@pytest.mark.parametrize("content,expected", [
    (b'{"format": "other", "version": 1}\n', "format is 'other'"),
    (b'{"format": "borderfusion-log", "version": 2}\n', "log version 2 is not supported"),
])
def test_wrong_header_stops_even_when_lenient(tmp_path, content, expected):
    path = tmp_path / "other.jsonl"
    path.write_bytes(content + GOOD)
    with pytest.raises(LogError, match=expected):
        list(read_log(path))


def test_many_bad_lines_are_all_counted_but_only_the_first_shown(tmp_path, caplog):
    path = tmp_path / "noisy.jsonl"
    path.write_bytes(HEADER + b"garbage\n" * 500 + GOOD)
    report = LogReport(str(path))
    assert len(list(read_log(path, report=report))) == 1
    assert report.skipped_lines == 500 and report.lines == 502
    assert len(report.problems) == 20
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 21  # 20 named, one "counted, not shown"


def test_overlong_line_is_a_bad_line_and_reading_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(fusion.logio, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "long.jsonl"
    path.write_bytes(HEADER + b'{"t_rx": 1.0, "topic": "a", "payload": "' + b"x" * 5000 + b'"}\n' + GOOD)
    report = LogReport(str(path))
    assert [r.payload for r in read_log(path, report=report)] == [b'{"k": 1}']
    assert report.skipped_lines == 1 and ":2: line longer than 1000 bytes" in report.problems[0]


def write_log(path, n=300):
    with LogWriter(path, "demo") as writer:
        for i in range(n):
            writer.write(1795000000.0 + i, "borderfusion/v1/raw/radar/r", b'{"seq": %d, "pad": "%s"}' % (i, b"%x" % (i * 7919) * 20))


@pytest.mark.parametrize("keep_fraction", [0.3, 0.7, 0.99])
def test_truncated_gzip_log_ends_early_and_says_where(tmp_path, keep_fraction):
    whole = tmp_path / "whole.jsonl.gz"
    write_log(whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: int(len(data) * keep_fraction)])
    report = LogReport(str(cut))
    records = list(read_log(cut, report=report))
    assert not report.complete and report.records == len(records) < 300
    assert [json.loads(r.payload)["seq"] for r in records] == list(range(len(records)))  # a clean prefix
    assert report.truncated.startswith(f"{cut}:{report.truncated_line}: gzip stream is damaged or cut short")
    assert report.truncated_line == report.lines + 1
    with pytest.raises(LogError, match="cut short"):
        list(read_log(cut, strict=True))


def test_plain_log_cut_mid_line_is_truncated(tmp_path):
    path = tmp_path / "cut.jsonl"
    write_log(path, 50)
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 20])  # 20 bytes into the last line
    report = LogReport(str(path))
    assert len(list(read_log(path, report=report))) == 49
    assert report.truncated_line == 51 and "ends in the middle of line 51" in report.truncated


def test_compression_is_recognised_by_content_not_name(tmp_path):
    gz, plain = tmp_path / "a.jsonl.gz", tmp_path / "a.jsonl"
    write_log(gz, 10)
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    (tmp_path / "gzip-named-plain.jsonl").write_bytes(gz.read_bytes())
    (tmp_path / "plain-named-gzip.jsonl.gz").write_bytes(plain.read_bytes())
    expected = [(r.t_rx, r.payload) for r in read_log(plain, strict=True)]
    assert len(expected) == 10
    for name in ("gzip-named-plain.jsonl", "plain-named-gzip.jsonl.gz"):
        assert [(r.t_rx, r.payload) for r in read_log(tmp_path / name, strict=True)] == expected


def test_empty_log(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = LogReport(str(path))
    assert list(read_log(path, report=report)) == [] and report.empty
    with pytest.raises(LogError, match="empty file"):
        list(read_log(path, strict=True))


@pytest.mark.parametrize("payload", [
    b'{"sensor_id":"radar-n1\xff","t":1.0}',
    b'{"x":' + b"[" * DEEP + b"]" * DEEP + b"}",
    b"\xff\xfe\x00 binary",
])
def test_writer_keeps_payloads_msgspec_cannot_decode_as_strings(tmp_path, payload):
    """``record`` must not die on them: they are recorded as strings and read back as such."""
    path = tmp_path / "rec.jsonl"
    with LogWriter(path, "demo") as writer:
        writer.write(1.0, "t", payload)
        writer.write(2.0, "t", b"{}")
    records = list(read_log(path, strict=True))
    assert [r.payload for r in records] == [payload.decode("utf-8", errors="replace").encode(), b"{}"]
