"""The accuracy suite's crossing scorer (``benchmarks/accuracy_suite.py``): declared crossings paired
one-to-one with true ones, as many pairs as the windows allow, then the least total delay."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from benchmarks.accuracy_suite import _match_crossings


def _scene(n_tracks: int, n_targets: int):
    """Every track and target at the origin in frame 0: only the time windows decide."""
    family = SimpleNamespace(position=np.zeros((1, n_targets, 2)))
    snaps = SimpleNamespace(at=lambda k: slice(0, n_tracks), x=np.zeros((n_tracks, 4)),
                            track_id=np.arange(1, n_tracks + 1))
    return family, snaps


def test_a_declaration_that_fits_one_crossing_only_keeps_it():
    """Crossings at 100 s and 110 s; one declaration at 111 s fits both (11 s and 1 s late), one at
    135 s only the second (35 s after the first is outside the −10…+30 s window).  Pairing the
    closest first (111 s with 110 s) left the 135 s declaration without a crossing: one pair of
    two.  The assignment finds both."""
    family, snaps = _scene(2, 2)
    truth = [(0, 100.0, 1), (1, 110.0, 1)]
    declared = [(1, 0, 111.0, 1), (2, 0, 135.0, 1)]
    assert sorted(_match_crossings(family, snaps, declared, truth)) == [(0, 0), (1, 1)]


def test_direction_window_and_distance_each_exclude_a_pair():
    family, snaps = _scene(1, 1)
    truth = [(0, 100.0, 1)]
    assert _match_crossings(family, snaps, [(1, 0, 101.0, -1)], truth) == []  # the other way
    assert _match_crossings(family, snaps, [(1, 0, 131.0, 1)], truth) == []  # 31 s late
    assert _match_crossings(family, snaps, [(1, 0, 89.0, 1)], truth) == []  # 11 s early
    assert _match_crossings(family, snaps, [(1, 0, 130.0, 1)], truth) == [(0, 0)]
    far = SimpleNamespace(position=np.full((1, 1, 2), 101.0))  # 143 m from the track: beyond c
    assert _match_crossings(far, snaps, [(1, 0, 101.0, 1)], truth) == []


def test_with_more_declarations_than_crossings_the_least_delay_wins():
    family, snaps = _scene(3, 1)
    declared = [(1, 0, 120.0, 1), (2, 0, 103.0, 1), (3, 0, 95.0, 1)]
    assert _match_crossings(family, snaps, declared, [(0, 100.0, 1)]) == [(1, 0)]


def test_a_target_that_vanished_after_crossing_is_matched_where_it_was_last():
    """A target 5 m over the border at frame 0 and gone at frame 1, when the (coasting) track
    declares its crossing: it did cross; the track is compared with its last position."""
    family = SimpleNamespace(position=np.array([[[0.0, 5.0]], [[np.nan, np.nan]]]))
    snaps = SimpleNamespace(at=lambda k: slice(0, 1), x=np.array([[0.0, -3.0, 0.0, -5.0]]), track_id=np.array([1]))
    assert _match_crossings(family, snaps, [(1, 1, 1.0, -1)], [(0, 0.5, -1)]) == [(0, 0)]
    gone_far = SimpleNamespace(position=np.array([[[0.0, 500.0]], [[np.nan, np.nan]]]))
    assert _match_crossings(gone_far, snaps, [(1, 1, 1.0, -1)], [(0, 0.5, -1)]) == []
