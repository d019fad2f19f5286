"""The static map: marker spreading, scale bar, drone paths, and the ``map`` command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.cli import main
from fusion.mapplot import drone_paths, scale_bar_km, spread_markers
from tests.conftest import DEMO_SITE


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 300), st.floats(0, 300)), min_size=1, max_size=40))
def test_spread_markers_never_overlap_and_leave_free_ones_in_place(points):
    px = np.array(points, dtype=float)
    out = spread_markers(px, spacing_px=10.0)
    distances = np.hypot(*(out[:, None, :] - out[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 10.0 - 1e-9
    assert np.array_equal(out[0], px[0])  # the first is always where it belongs


def test_spread_markers_keeps_markers_that_are_already_apart():
    px = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    assert np.array_equal(spread_markers(px, 10.0), px)


@pytest.mark.parametrize("width_km, bar_km", [(24.0, 2.0), (10.0, 2.0), (26.0, 5.0), (3.0, 0.5), (240.0, 20.0)])
def test_scale_bar_is_a_round_length_near_a_fifth(width_km, bar_km):
    assert scale_bar_km(width_km) == bar_km


def test_drone_paths_come_from_the_logged_platform_positions(demo_log):
    log, _ = demo_log
    paths = drone_paths(log)
    assert set(paths) == {"uav-3"}
    lon, lat = paths["uav-3"].T
    assert len(lon) > 100
    # the demo's drone orbits (47.0, 8.02) at 1.2 km: every platform fix is about that far from it
    radius_m = np.hypot((lon - 8.02) * 111_320 * np.cos(np.radians(47.0)), (lat - 47.0) * 110_540)
    assert np.all(np.abs(radius_m - 1200.0) < 60.0)


def test_map_command_draws_a_run(tmp_path, short_log, capsys):
    from PIL import Image

    from fusion.replay import replay_file
    from fusion.config import load_site

    log, expected = short_log
    tracks, alerts = tmp_path / "tracks.jsonl", tmp_path / "alerts.jsonl"
    replay_file(load_site(DEMO_SITE), log, alerts, tracks, progress=False)
    out = tmp_path / "map.png"
    assert main(["map", "--config", str(DEMO_SITE), "--tracks", str(tracks), "--alerts", str(alerts),
                 "--log", str(log), "--out", str(out)]) == 0
    n_tracks = len({t["track_id"] for line in tracks.read_text().splitlines() for t in json.loads(line)["tracks"]})
    assert f"{n_tracks} tracks, {len(expected.alerts)} alerts" in capsys.readouterr().out
    pixels = np.asarray(Image.open(out).convert("RGB"))
    assert pixels.shape[0] > 800 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200


def test_map_command_names_the_bad_line(tmp_path, capsys):
    tracks = tmp_path / "tracks.jsonl"
    tracks.write_text('{"t": 1.0, "tracks": []}\n{"t": 2.0, "tracks": [{"track_id": "x", "lat": "north"}]}\n')
    assert main(["map", "--config", str(DEMO_SITE), "--tracks", str(tracks), "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert f"{tracks}:2" in err and "track snapshot" in err


def test_spread_markers_keep_clear_of_occupied_spots():
    occupied = np.array([[0.0, 0.0], [10.0, 0.0]])
    out = spread_markers(np.array([[0.0, 0.0], [5.0, 0.0], [40.0, 40.0]]), 10.0, occupied_px=occupied)
    for spot in out:
        assert np.all(np.hypot(*(occupied - spot).T) >= 10.0 - 1e-9)
    assert np.array_equal(out[2], [40.0, 40.0])
