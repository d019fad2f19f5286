import hashlib
import json
import subprocess
import sys

import numpy as np

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
