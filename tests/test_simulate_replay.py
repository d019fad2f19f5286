import gzip
import hashlib
import json
import stat
import subprocess
import sys

import numpy as np
import pytest

from fusion.cli import main
from fusion.logio import read_log
from fusion.simulate import simulate
from tests.conftest import DEMO_SITE


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_simulator_is_deterministic_per_seed(tmp_path, demo_site):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    simulate(demo_site, 60.0, a, tmp_path / "ta.jsonl", seed=11, n_targets=5)
    simulate(demo_site, 60.0, b, tmp_path / "tb.jsonl", seed=11, n_targets=5)
    simulate(demo_site, 60.0, c, tmp_path / "tc.jsonl", seed=12, n_targets=5)
    assert digest(a) == digest(b) and digest(tmp_path / "ta.jsonl") == digest(tmp_path / "tb.jsonl")
    assert digest(a) != digest(c)


def test_simulated_log_is_out_of_order_and_covers_all_sensor_kinds(demo_log):
    log, truth = demo_log
    records = list(read_log(log))
    rx = [r.t_rx for r in records]
    assert rx == sorted(rx)
    sensor_t = [json.loads(r.payload)["t"] for r in records]
    assert any(b < a for a, b in zip(sensor_t, sensor_t[1:])), "network delay should reorder some messages"
    kinds = {r.topic.split("/")[3] for r in records}
    assert kinds == {"radar", "ground", "drone"}
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    assert {"t", "target_id", "class", "lat", "lon", "east_m", "north_m", "vel_east_mps", "vel_north_mps"} <= set(lines[0])
    speeds = {}
    for line in lines:
        speeds.setdefault(line["class"], []).append(np.hypot(line["vel_east_mps"], line["vel_north_mps"]))
    assert np.median(speeds["person"]) < 2.0
    if "vehicle" in speeds:
        assert np.median(speeds["vehicle"]) > 4.0


def test_replay_of_simulated_log_rejects_nothing_and_is_byte_identical(tmp_path, demo_log, capsys):
    log, _ = demo_log
    outs = []
    for run in ("1", "2"):
        files = [tmp_path / f"{kind}{run}.jsonl" for kind in ("alerts", "tracks", "rejected")]
        code = main(["replay", str(log), "--config", str(DEMO_SITE), "--alerts-out", str(files[0]),
                     "--tracks-out", str(files[1]), "--rejected-out", str(files[2])])
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
        outs.append([digest(f) for f in files])
    assert outs[0] == outs[1]
    counters = summary["counters"]
    assert counters["rejected"] == 0 and counters["received"] > 0 and counters["detections"] > 0
    assert (tmp_path / "rejected1.jsonl").read_bytes() == b""
    snapshots = [json.loads(line) for line in (tmp_path / "tracks1.jsonl").read_text().splitlines()]
    assert len(snapshots) >= 290  # 1 Hz of data time over 300 s
    assert all(b["t"] - a["t"] == 1.0 for a, b in zip(snapshots, snapshots[1:]))


def test_replay_with_hostile_lines_keeps_going(tmp_path, demo_log, capsys):
    log, _ = demo_log
    records = list(read_log(log))[:400]
    from fusion.logio import LogWriter

    hostile = tmp_path / "hostile.jsonl"
    with LogWriter(hostile, "demo") as writer:
        for i, r in enumerate(records):
            writer.write(r.t_rx, r.topic, r.payload)
            if i % 50 == 0:
                writer.write(r.t_rx, r.topic, b'{"sensor_id": 5}')
                writer.write(r.t_rx, "borderfusion/v1/raw/radar/ghost", b"\x00\x01")
    rejected = tmp_path / "rejected.jsonl"
    assert main(["replay", str(hostile), "--config", str(DEMO_SITE), "--rejected-out", str(rejected)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counters"]["rejected"] == 16
    assert summary["counters"]["accepted"] == 400
    reasons = [json.loads(line)["reason"] for line in rejected.read_text().splitlines()]
    assert all(reasons)


def test_demo_command_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "fusion.cli", "demo", "--out", str(out), "--duration", "300"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "alerts" in result.stdout and "targets" in result.stdout
    for name in ("alerts.jsonl", "tracks.jsonl", "rejected.jsonl", "map.png", "scores.json"):
        assert (out / name).exists(), name
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scores = json.loads((out / "scores.json").read_text())
    assert scores["frames"] >= 290


@pytest.fixture(scope="module")
def small_log(tmp_path_factory, demo_log):
    """The first 200 records of the demo log, gzip-compressed (enough to raise tracks and some alerts)."""
    from fusion.logio import LogWriter

    path = tmp_path_factory.mktemp("small") / "small.jsonl.gz"
    with LogWriter(path, "demo") as writer:
        for r in list(read_log(demo_log[0]))[:200]:
            writer.write(r.t_rx, r.topic, r.payload)
    return path


def replay(log, tmp_path, *extra):
    return main(["replay", str(log), "--config", str(DEMO_SITE), "--alerts-out", str(tmp_path / "alerts.jsonl"),
                 "--tracks-out", str(tmp_path / "tracks.jsonl"), "--rejected-out", str(tmp_path / "rejected.jsonl"),
                 *extra])


def test_replay_outputs_are_readable_by_the_owner_only(tmp_path, small_log, capsys):
    (tmp_path / "alerts.jsonl").write_text("old\n")  # an existing file is narrowed too
    (tmp_path / "alerts.jsonl").chmod(0o644)
    assert replay(small_log, tmp_path) == 0
    for name in ("alerts.jsonl", "tracks.jsonl", "rejected.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert b"old" not in (tmp_path / "alerts.jsonl").read_bytes()


def test_truncated_gzip_replays_the_prefix_and_announces_partial_outputs(tmp_path, small_log, capsys, caplog):
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(small_log.read_bytes()[: small_log.stat().st_size // 2])
    assert replay(cut, tmp_path) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["log"]["complete"] is False and 0 < summary["log"]["records"] < 200
    assert summary["counters"]["received"] == summary["log"]["records"]
    line = summary["log"]["truncated_line"]
    assert f"{cut}:{line}: gzip stream is damaged or cut short" in caplog.text  # the reader's warning
    assert f"PARTIAL: {cut} is cut short at line {line}" in captured.err and "alerts.jsonl" in captured.err
    assert "Traceback" not in captured.err
    assert (tmp_path / "tracks.jsonl").read_bytes()  # what came before the cut was replayed


def test_bad_lines_are_skipped_by_default_and_stop_a_strict_replay(tmp_path, small_log):
    """Through the real command line: each bad line named on stderr with file and line, no traceback."""
    lines = gzip.decompress(small_log.read_bytes()).splitlines(keepends=True)
    bad = [b'{"tst":"not a time","topic":"x","payload":{}}\n',
           b'{"t_rx":1.0,"topic":"x\xff","payload":{}}\n',
           b'{"t_rx":1.0,"topic":"x","payload":' + b"[" * 1100 + b"]" * 1100 + b"}\n"]
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"".join(lines[:50] + bad + lines[50:]))
    command = [sys.executable, "-m", "fusion.cli", "replay", str(damaged), "--config", str(DEMO_SITE),
               "--alerts-out", str(tmp_path / "alerts.jsonl")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["log"]["skipped_lines"] == 3 and summary["log"]["records"] == 200
    assert f"{damaged}:51: tst: expected an ISO time" in result.stderr
    assert f"{damaged}:52: not JSON: invalid UTF-8" in result.stderr
    assert f"{damaged}:53: not JSON we accept: arrays/objects nested deeper" in result.stderr
    assert f"skipped 3 bad lines of {len(lines) + 3} in {damaged}" in result.stderr
    assert "Traceback" not in result.stderr

    result = subprocess.run(command + ["--strict"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert f"{damaged}:51: tst: expected an ISO time" in result.stderr and "(stopped: --strict)" in result.stderr
    assert "PARTIAL: outputs" in result.stderr and "the 49 records before it" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty (0 bytes)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "is a log record; is it a borderfusion log or a mosquitto_sub"),
])
def test_logs_with_nothing_to_replay_exit_1_with_a_message(tmp_path, capsys, content, expected):
    path = tmp_path / "nothing.jsonl"
    path.write_bytes(content)
    assert replay(path, tmp_path) == 1
    err = capsys.readouterr().err
    assert str(path) in err and expected in err and "Traceback" not in err
