"""``evaluate``: scores on files that belong together, a clear refusal of files that do not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.cli import main
from fusion.evaluate import EvaluationError, evaluate, frame_origin
from geo.frame import LocalFrame

SITE = LocalFrame(47.0, 8.0, 500.0)
T0 = 1795000000.0


def _paths(seconds: int = 60, targets: int = 3) -> np.ndarray:
    """(targets, seconds, 2) east/north of walkers 1.5 m/s north-east from spread starts."""
    k = np.arange(seconds)[None, :, None]
    start = np.array([[-2000.0 + 900.0 * i, -500.0 + 300.0 * i] for i in range(targets)])[:, None, :]
    return start + k * np.array([1.0, 1.1])


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_truth(path: Path, xy: np.ndarray, frame: LocalFrame = SITE, t0: float = T0) -> Path:
    lat, lon, _ = frame.to_geodetic(xy[..., 0], xy[..., 1])
    return _write(path, [{"t": t0 + k, "target_id": f"tgt-{i}", "class": "person", "lat": float(lat[i, k]),
                          "lon": float(lon[i, k]), "east_m": float(xy[i, k, 0]), "north_m": float(xy[i, k, 1]),
                          "vel_east_mps": 1.0, "vel_north_mps": 1.1, "jurisdiction": "country-a"}
                         for k in range(xy.shape[1]) for i in range(xy.shape[0])])


def write_tracks(path: Path, xy: np.ndarray, frame: LocalFrame = SITE, t0: float = T0) -> Path:
    lat, lon, _ = frame.to_geodetic(xy[..., 0], xy[..., 1])
    return _write(path, [{"node_id": "edge-1", "t": t0 + k, "tracks": [
        {"track_id": f"edge-1-{i + 1}", "status": "confirmed", "lat": float(lat[i, k]), "lon": float(lon[i, k]),
         "east_m": float(xy[i, k, 0]), "north_m": float(xy[i, k, 1])} for i in range(xy.shape[0])]}
        for k in range(xy.shape[1])])


@pytest.fixture
def truth_xy():
    return _paths()


@pytest.fixture
def estimates_xy(truth_xy):
    return truth_xy + np.random.default_rng(1).normal(0, 5.0, truth_xy.shape)  # σ 5 m


def test_scores_of_files_from_one_run_with_gospa_units(tmp_path, truth_xy, estimates_xy):
    truth, tracks = write_truth(tmp_path / "truth.jsonl", truth_xy), write_tracks(tmp_path / "tracks.jsonl", estimates_xy)
    scores = evaluate(truth, tracks)
    assert scores["frames"] == 60 and scores["mota"] == 1.0 and scores["identity_switches"] == 0
    gospa = scores["gospa"]
    assert gospa["units"] == {"mean": "m", "localisation": "m^2", "missed": "m^2", "false": "m^2"}
    assert gospa["missed_targets_per_frame"] == 0 and gospa["false_tracks_per_frame"] == 0
    # every target matched: GOSPA² per frame is the sum of squared errors, ≈ 3 targets × 2 axes × σ²
    assert gospa["localisation"] == pytest.approx(3 * 2 * 25.0, rel=0.3)


def test_missed_targets_and_false_tracks_are_counted_per_frame(tmp_path, truth_xy, estimates_xy):
    far = estimates_xy.copy()
    far[2] += 5000.0  # one track nowhere near its target: one missed target and one false track a frame
    scores = evaluate(write_truth(tmp_path / "t.jsonl", truth_xy), write_tracks(tmp_path / "k.jsonl", far))
    assert scores["gospa"]["missed_targets_per_frame"] == 1 and scores["gospa"]["false_tracks_per_frame"] == 1
    assert scores["gospa"]["missed"] == pytest.approx(100.0**2 / 2)


@pytest.mark.parametrize("change,expected", [
    ({"t0": T0 + 86_400}, "not from the same run"),                      # another day
    ({"t0": T0 + 0.5}, "no snapshot time equals a truth time"),           # interleaved, never equal
    ({"frame": LocalFrame(47.3, 8.4, 500.0)}, "from different sites"),   # same numbers, another origin
])
def test_files_not_from_one_run_are_refused_naming_both(tmp_path, truth_xy, estimates_xy, change, expected):
    truth = write_truth(tmp_path / "truth.jsonl", truth_xy)
    tracks = write_tracks(tmp_path / "tracks.jsonl", estimates_xy, **change)
    with pytest.raises(EvaluationError, match=expected) as error:
        evaluate(truth, tracks)
    assert "tracks.jsonl" in str(error.value)
    if expected != "no snapshot time equals a truth time":
        assert "truth.jsonl" in str(error.value)


def test_tracks_of_another_seed_are_refused_unless_asked(tmp_path, truth_xy, capsys):
    """Same site, same times, other targets (another simulate seed): almost nothing matches either way."""
    other = _paths() + np.array([700.0, -900.0])
    truth, tracks = write_truth(tmp_path / "truth.jsonl", truth_xy), write_tracks(tmp_path / "tracks.jsonl", other)
    with pytest.raises(EvaluationError, match=r"tracks\.jsonl matches almost none of .*truth\.jsonl: 0\.0% "):
        evaluate(truth, tracks)
    assert evaluate(truth, tracks, check=False)["mota"] < 0
    assert main(["evaluate", "--truth", str(truth), "--tracks", str(tracks), "--no-check"]) == 0
    assert json.loads(capsys.readouterr().out)["detection_recall"] == 0


def test_alerts_from_another_run_are_refused(tmp_path, truth_xy, estimates_xy):
    truth, tracks = write_truth(tmp_path / "truth.jsonl", truth_xy), write_tracks(tmp_path / "tracks.jsonl", estimates_xy)
    alerts = _write(tmp_path / "alerts.jsonl", [{"type": "border_crossing", "t": T0 + 90_000.0, "raised_t": T0 + 90_001.0,
                                                 "lat": 47.0, "lon": 8.0}])
    with pytest.raises(EvaluationError, match=r"alerts\.jsonl and .*truth\.jsonl are not from the same run"):
        evaluate(truth, tracks, alerts)


def test_a_malformed_line_is_named_by_file_and_line(tmp_path, truth_xy, estimates_xy):
    truth = write_truth(tmp_path / "truth.jsonl", truth_xy)
    lines = truth.read_text().splitlines()
    lines[4] = json.dumps({k: v for k, v in json.loads(lines[4]).items() if k != "east_m"})
    truth.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvaluationError, match=r"truth\.jsonl:5: not a ground-truth line: .*east_m"):
        evaluate(truth, write_tracks(tmp_path / "tracks.jsonl", estimates_xy))


def test_cli_exits_2_with_the_reason_on_stderr(tmp_path, truth_xy, estimates_xy, capsys):
    truth = write_truth(tmp_path / "truth.jsonl", truth_xy)
    tracks = write_tracks(tmp_path / "tracks.jsonl", estimates_xy, t0=T0 + 86_400)
    assert main(["evaluate", "--truth", str(truth), "--tracks", str(tracks)]) == 2
    err = capsys.readouterr().err
    assert str(truth) in err and str(tracks) in err and "Traceback" not in err


def test_frame_origin_recovers_the_site_origin():
    """From any point's lat/lon and its east/north, the origin of its frame, to about a metre (the check
    of different sites allows 100 m)."""
    rng = np.random.default_rng(5)
    for east, north in rng.uniform(-15_000, 15_000, (20, 2)):
        lat, lon, _ = SITE.to_geodetic(east, north)
        lat0, lon0 = frame_origin(float(lat), float(lon), east, north)
        assert abs(lat0 - 47.0) < 1.5e-5 and abs(lon0 - 8.0) < 2e-5  # ≈ 1.5 m
