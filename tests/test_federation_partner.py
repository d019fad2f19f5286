"""The ingress of a partner's released tracks: intake and rejections, links over several scans,
CI fusion as a separate output, incoming alerts, and the two-node scenario (issue 16)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.federation_fusion import jurisdictions, run
from fusion.federation.partner import PartnerFusionConfig, PartnerPicture
from geo.alerts import alert_id
from geo.frame import LocalFrame
from tracking.track_fusion import covariance_intersection

OURS = LocalFrame(47.0, 8.0)
THEIRS = LocalFrame(46.97, 8.02)  # the partner's own frame: another origin, 3.5 km away
TOPIC = "borderfusion/v1/partner/node-a/tracks"
P_OWN = np.diag([100.0, 100.0, 1.0, 1.0])
P_PARTNER = np.diag([300.0, 300.0, 2.0, 2.0])


def _track(track_id: str, east: float, north: float, ve: float = 0.0, vn: float = 0.0, frame: LocalFrame = OURS,
           P: np.ndarray = P_PARTNER, **fields) -> dict:
    lat, lon, _ = frame.to_geodetic(east, north)
    return {"track_id": track_id, "status": "confirmed", "lat": float(lat), "lon": float(lon), "vel_east_mps": ve,
            "vel_north_mps": vn, "covariance": np.asarray(P).tolist(), "classification": {"vehicle": 0.9},
            "existence": 0.99, "first_seen": 0.0, "last_update": 0.0, **fields}


def _message(t: float, tracks: list[dict], origin: str = "node-a") -> dict:
    return {"origin": origin, "t": t, "label": {"policy": "a-to-b", "originator": origin, "releasable_to": []},
            "tracks": tracks}


def _own(t: float, ids, x, P=None) -> SimpleNamespace:
    x = np.asarray(x, float).reshape(-1, 4)
    P = np.tile(P_OWN, (len(x), 1, 1)) if P is None else np.asarray(P, float)
    return SimpleNamespace(t=t, track_id=np.asarray(ids, np.int64), x=x, P=P)


def _picture(**config) -> PartnerPicture:
    return PartnerPicture(OURS, "node-b", PartnerFusionConfig(**config), jurisdictions(), ("country-b",))


# -- intake -------------------------------------------------------------------------------------

def test_positions_come_into_our_frame_from_lat_lon():
    picture = _picture()
    east_theirs, north_theirs = 1200.0, -300.0
    assert picture.ingest(_message(10.0, [_track("p1", east_theirs, north_theirs, 3.0, 4.0, frame=THEIRS)]),
                          TOPIC) == []
    tracks = picture.partner_tracks("node-a")
    lat, lon, _ = THEIRS.to_geodetic(east_theirs, north_theirs)
    e, n, _ = OURS.to_enu(lat, lon)
    np.testing.assert_allclose(tracks.x[0], [float(e), float(n), 3.0, 4.0], atol=1e-6)
    assert abs(float(n) - north_theirs) > 3000  # the origins differ: the conversion did something
    assert tracks.track_id == ("p1",) and tracks.label["originator"] == "node-a"


@pytest.mark.parametrize("mutate, where", [
    (lambda m: m.pop("t"), "`t`"),
    (lambda m: m["tracks"][0].__setitem__("lat", 95.0), "tracks[0].lat"),
    (lambda m: m["tracks"][0].__setitem__("covariance", [[1.0, 0.0], [0.0, 1.0]]), "tracks[0].covariance"),
    (lambda m: m["tracks"][0].__setitem__("status", "lost"), "tracks[0].status: invalid enum value 'lost', "
                                                             "expected one of coasting, confirmed, tentative"),
    (lambda m: m["label"].pop("originator"), "label"),
    # interface §7 names the policy `policy`; the site file's `policy_id` is not the wire's
    (lambda m: m["label"].__setitem__("policy_id", m["label"].pop("policy")),
     "label.policy_id: not a field of the label; its policy is named `policy`"),
    (lambda m: m["label"].pop("policy"), "label.policy: missing"),
])
def test_a_bad_message_is_rejected_whole_naming_the_field(mutate, where):
    picture = _picture()
    assert picture.ingest(_message(1.0, [_track("p1", 0.0, -500.0)]), TOPIC) == []
    bad = _message(2.0, [_track("p1", 0.0, -400.0)])
    mutate(bad)
    rejections = picture.ingest(bad, TOPIC, t_received=5.0)
    assert len(rejections) == 1 and where in rejections[0].reason, rejections[0].reason
    assert rejections[0].topic == TOPIC and rejections[0].t_received == 5.0
    assert json.loads(rejections[0].payload) == bad
    assert picture.partner_tracks("node-a").t == 1.0  # what we held stays


@pytest.mark.parametrize("message, topic, reason", [
    (_message(1.0, [], origin="node-b"), "x/partner/node-b/tracks", "is this node"),
    (_message(1.0, [], origin="node-c"), TOPIC, "on the topic of partner 'node-a'"),
    ({**_message(1.0, []), "label": {"originator": "node-c"}}, TOPIC, "label.originator"),
    (b"{not json", TOPIC, "not JSON:"),
    (b'{"origin": "\xff"}', TOPIC, "not JSON: invalid UTF-8 at byte"),
    (b"[" * 5000 + b"]" * 5000, TOPIC, "expected `object`, got `array`"),  # typed decoding never recurses deep
    ([1, 2], TOPIC, "expected `object`, got `array`"),
    ({**_message(1.0, []), "t": float("nan")}, TOPIC, "t: expected `float`"),
    ({**_message(1.0, []), "t": object()}, TOPIC, "not JSON: cannot be encoded"),
])
def test_messages_that_are_not_a_partners_own_are_rejected(message, topic, reason):
    rejections = _picture().ingest(message, topic)
    assert len(rejections) == 1 and reason in rejections[0].reason, rejections[0].reason


def test_an_old_or_repeated_message_is_rejected():
    picture = _picture()
    assert picture.ingest(_message(5.0, [_track("p1", 0.0, -500.0)]), TOPIC) == []
    for t in (5.0, 4.0):
        rejections = picture.ingest(_message(t, [_track("p2", 0.0, -500.0)]), TOPIC)
        assert len(rejections) == 1 and "not after the last message" in rejections[0].reason
    assert picture.partner_tracks("node-a").track_id == ("p1",)


def test_a_bad_track_is_rejected_alone():
    picture = _picture()
    not_pd = np.diag([100.0, -1.0, 1.0, 1.0])
    asymmetric = P_PARTNER.copy()
    asymmetric[0, 1] = 50.0
    message = _message(1.0, [_track("p1", 0.0, -500.0), _track("p2", 0.0, -600.0, P=not_pd),
                             _track("p3", 0.0, -700.0, P=asymmetric), _track("p1", 0.0, -800.0)])
    rejections = picture.ingest(message, TOPIC)
    reasons = [r.reason for r in rejections]
    assert reasons[0].startswith("tracks[1].covariance: not positive definite")
    assert reasons[1].startswith("tracks[2].covariance: not symmetric")
    assert reasons[2].startswith("tracks[3].track_id: duplicate 'p1'")
    assert picture.partner_tracks("node-a").track_id == ("p1",)


def test_a_track_whose_own_label_names_policy_id_is_rejected_alone():
    picture = _picture()
    passed_on = {"originator": "node-c", "releasable_to": ["node-b"]}
    message = _message(1.0, [_track("p1", 0.0, -500.0, label={**passed_on, "policy": "c-to-a"}),
                             _track("p2", 0.0, -600.0, label={**passed_on, "policy_id": "c-to-a"})])
    (rejection,) = picture.ingest(message, TOPIC)
    assert rejection.reason.startswith("tracks[1].label.policy_id: not a field of the label"), rejection.reason
    assert picture.partner_tracks("node-a").track_id == ("p1",)
    assert picture.partner_tracks("node-a").labels == ({**passed_on, "policy": "c-to-a"},)


def test_bad_configuration_names_the_field():
    with pytest.raises(ValueError, match="gate_dims"):
        PartnerFusionConfig(gate_dims=3)
    with pytest.raises(ValueError, match="'country-z' not among"):
        PartnerPicture(OURS, "node-b", None, jurisdictions(), ("country-z",))


# -- links and fusion ---------------------------------------------------------------------------

def _walk(picture: PartnerPicture, steps: int, offset_m: float = 5.0, start: float = 0.0, own_id: int = 7,
          partner_id: str = "p1"):
    """One target moving north at 2 m/s: own and partner estimates ``offset_m`` apart; returns the pictures."""
    out = []
    for k in range(steps):
        t = start + k
        north = -200.0 + 2.0 * t
        picture.ingest(_message(t, [_track(partner_id, offset_m, north, 0.0, 2.0)]), TOPIC)
        out.append(picture.fuse(_own(t, [own_id], [0.0, north, 0.0, 2.0])))
    return out


def test_a_link_forms_after_confirm_scans_and_fuses_by_ci():
    pictures = _walk(_picture(confirm_scans=3), 4)
    assert [bool(p.links[0]) for p in pictures] == [False, False, True, True]
    assert [int(p.partner_pending[0]) for p in pictures[:2]] == [7, 7]  # assigned, not yet linked
    assert not pictures[1].fused[0] and pictures[2].fused[0]
    assert pictures[2].links[0] == (("node-a", "p1"),) and pictures[2].partner_link.tolist() == [7]
    last = pictures[3]
    partner_xy = last.partner_x[0]
    c, C, _ = covariance_intersection(np.array([[0.0, -194.0, 0.0, 2.0]]), P_OWN[None], partner_xy[None],
                                      last.partner_P[:1])
    np.testing.assert_allclose(last.x[0], c[0], atol=1e-9)
    np.testing.assert_allclose(last.P[0], C[0], atol=1e-9)
    assert last.joint_xy().shape == (1, 2)  # one target, one entry


def test_the_own_estimate_is_never_overwritten():
    picture = _picture(confirm_scans=1)
    sharper_east = np.diag([20.0, 400.0, 2.0, 0.5])  # better than ours along east: CI takes some of it
    picture.ingest(_message(0.0, [_track("p1", 5.0, -200.0, P=sharper_east)]), TOPIC)
    own = _own(0.0, [7], [0.0, -200.0, 0.0, 0.0])
    before_x, before_P = own.x.copy(), own.P.copy()
    fused = picture.fuse(own)
    assert fused.fused[0] and not np.allclose(fused.x[0], before_x[0])
    np.testing.assert_array_equal(own.x, before_x)
    np.testing.assert_array_equal(own.P, before_P)
    tracks = picture.partner_tracks("node-a")
    assert tracks.track_id == ("p1",) and tracks.labels[0]["originator"] == "node-a"  # provenance kept


def test_fusing_more_often_than_the_partner_publishes_does_not_confirm_faster():
    picture = _picture(confirm_scans=3)
    picture.ingest(_message(0.0, [_track("p1", 5.0, -200.0)]), TOPIC)
    for k in range(6):
        fused = picture.fuse(_own(0.1 * k, [7], [0.0, -200.0, 0.0, 0.0]))
    assert not fused.links[0] and picture.links() == {}


def test_a_link_breaks_after_break_scans_failures():
    picture = _picture(confirm_scans=2, break_scans=3)
    _walk(picture, 3)
    assert picture.links() == {7: [("node-a", "p1")]}
    states = []
    for k in range(3, 7):  # the partner track now 2 km away: the gate fails every scan
        picture.ingest(_message(float(k), [_track("p1", 2000.0, -194.0 + 2 * k, 0.0, 2.0)]), TOPIC)
        fused = picture.fuse(_own(float(k), [7], [0.0, -200.0 + 2.0 * k, 0.0, 2.0]))
        states.append((bool(fused.links[0]), bool(fused.fused[0])))
    assert states[:2] == [(True, False), (True, False)]  # linked still, but nothing fused outside the gate
    assert states[2] == (False, False)
    assert picture.links() == {}


def test_gnn_pairs_two_close_targets_right():
    picture = _picture(confirm_scans=2)
    for t in (0.0, 1.0):
        picture.ingest(_message(t, [_track("east", 95.0, -300.0), _track("west", 5.0, -300.0)]), TOPIC)
        picture.fuse(_own(t, [1, 2], [[0.0, -300.0, 0.0, 0.0], [100.0, -300.0, 0.0, 0.0]]))
    assert picture.links() == {1: [("node-a", "west")], 2: [("node-a", "east")]}


def test_an_unlinked_partner_track_is_in_the_joint_picture_with_its_provenance():
    picture = _picture()
    picture.ingest(_message(0.0, [_track("far", 0.0, -3000.0), _track("near", 5.0, -200.0)]), TOPIC)
    fused = picture.fuse(_own(0.0, [7], [0.0, -200.0, 0.0, 0.0]))
    assert fused.partner_track_id == ("far", "near")
    assert fused.partner_only.tolist() == [True, False]  # "near" is being linked to 7
    np.testing.assert_allclose(fused.joint_xy()[1], fused.partner_x[0, :2])
    assert fused.partner_label[0]["originator"] == "node-a"


def test_links_by_track_for_the_snapshot():
    pictures = _walk(_picture(confirm_scans=1), 1)
    entry = pictures[0].links_by_track("node-b")["node-b-7"]
    assert entry["partner_tracks"] == [{"origin": "node-a", "track_id": "p1"}]
    assert set(entry["fused"]) == {"east_m", "north_m", "vel_east_mps", "vel_north_mps", "covariance"}


def test_a_silent_partner_is_dropped_with_its_links():
    picture = _picture(confirm_scans=1, stale_after_s=10.0)
    _walk(picture, 1)
    assert picture.links()
    picture.fuse(_own(20.0, [7], [0.0, -160.0, 0.0, 2.0]))
    assert picture.partner_tracks("node-a") is None and picture.links() == {}


# -- incoming ------------------------------------------------------------------------------------

def test_incoming_alert_for_a_partner_track_heading_into_our_country():
    picture = _picture()
    picture.ingest(_message(100.0, [_track("p1", 300.0, -1000.0, 0.0, 10.0), _track("away", 0.0, -1000.0, 0.0, -10.0),
                                    _track("slow", 0.0, -500.0, 0.0, 0.1), _track("far", 0.0, -9000.0, 0.0, 10.0)]),
                   TOPIC)
    alerts = picture.incoming_alerts(102.0)
    assert [a.track_id for a in alerts] == ["node-a/p1"]
    alert = alerts[0].to_dict()
    assert alert["type"] == "incoming" and alert["source"] == "node-a"
    assert alert["eta_s"] == pytest.approx(98.0, abs=0.5)  # 980 m to the border at 10 m/s, 2 s after the message
    assert alert["to_jurisdiction"] == alert["jurisdiction"] == "country-b"
    assert alert["from_jurisdiction"] == "country-a" and alert["recipients"] == ["agency-b"]
    assert alert["partner_track"] == {"origin": "node-a", "track_id": "p1"} and alert["label"]["originator"] == "node-a"
    assert alert["alert_id"] == alert_id("node-b", "node-a/p1", "incoming", "country-b", 102.0, "node-a>country-b")
    assert picture.incoming_alerts(103.0) == []  # once per partner track


def test_incoming_alert_ids_are_deterministic_and_inside_means_eta_zero():
    def once():
        picture = _picture()
        picture.ingest(_message(50.0, [_track("in", 0.0, 200.0, 0.0, 1.0)]), TOPIC)
        return picture.incoming_alerts(50.0)
    first, second = once(), once()
    assert first[0].alert_id == second[0].alert_id and first[0].eta_s == 0.0


def test_no_incoming_alert_for_a_track_we_already_hold():
    picture = _picture(confirm_scans=2)
    for t in (0.0, 1.0):
        picture.ingest(_message(t, [_track("p1", 5.0, -300.0 + 10 * t, 0.0, 10.0)]), TOPIC)
        picture.fuse(_own(t, [7], [0.0, -300.0 + 10 * t, 0.0, 10.0]))
    assert picture.links() == {7: [("node-a", "p1")]}
    assert picture.incoming_alerts(1.0) == []


def test_no_incoming_alert_for_a_track_being_linked():
    picture = _picture(confirm_scans=3)
    picture.ingest(_message(0.0, [_track("p1", 5.0, -300.0, 0.0, 10.0)]), TOPIC)
    fused = picture.fuse(_own(0.0, [7], [0.0, -300.0, 0.0, 10.0]))
    assert fused.partner_pending.tolist() == [7] and not fused.links[0]
    assert picture.incoming_alerts(0.0) == []


def test_without_own_jurisdictions_no_incoming_alert():
    picture = PartnerPicture(OURS, "node-b")
    picture.ingest(_message(0.0, [_track("p1", 0.0, -100.0, 0.0, 10.0)]), TOPIC)
    assert picture.incoming_alerts(0.0) == []


# -- the two-node scenario ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_two_nodes_one_truth(seed):
    """Node B with A's released tracks (coarsened to 50 m): the joint picture's GOSPA at most 0.9×
    the better node alone, the incoming alert ≥ 20 s before B's radar could first see a crossing
    vehicle, and no hand-over break for the crossing targets but where B's own tracker swapped
    identities on that target (seed 0: two targets passing head-on 10 m apart at the border, where
    a swapped own track carries its link to the other target's partner track for 2 s)."""
    result = run(seed)
    assert result["ratio_fused_to_best"] <= 0.9, result
    assert result["crossing_targets"] >= 1
    assert result["incoming_lead_min_s"] >= 20.0, result
    breaks, switches = result["crossing_handover_breaks"], result["crossing_own_tracker_switches"]
    assert all(b <= s for b, s in zip(breaks, switches)), result
    assert sum(result["crossing_duplicate_s"]) <= 2 * result["crossing_targets"], result
    assert result["fused_track_seconds"] > 0
    assert result["nees_position_fused_mean"] <= 2.5, result  # CI: consistent, typically below 2


# -- our tracker's merges, checkpoints, the joint picture's partner entries ------------------------

def test_a_merge_of_our_tracks_keeps_the_link():
    picture = _picture(confirm_scans=2)
    _walk(picture, 2, own_id=9)
    assert picture.links() == {9: [("node-a", "p1")]}
    picture.merge_own(9, 4)  # our tracker absorbed 9 into the older 4
    assert picture.links() == {4: [("node-a", "p1")]}
    picture.ingest(_message(2.0, [_track("p1", 5.0, -196.0, 0.0, 2.0)]), TOPIC)
    fused = picture.fuse(_own(2.0, [4], [0.0, -196.0, 0.0, 2.0]))
    assert fused.links[0] == (("node-a", "p1"),) and fused.fused[0]


def test_a_restart_from_the_checkpoint_goes_on_as_if_none_happened():
    def scenario(restart: bool):
        picture = _picture(confirm_scans=3)
        out = []
        for t in range(6):
            if restart and t == 2:
                arrays, meta = picture.export_state()
                picture = _picture(confirm_scans=3)
                picture.import_state(arrays, json.loads(json.dumps(meta)))
            picture.ingest(_message(float(t), [_track("p1", 5.0, -200.0 + 2 * t, 0.0, 2.0),
                                               _track("cue", 0.0, -900.0 + 10 * t, 0.0, 10.0)]), TOPIC)
            fused = picture.fuse(_own(float(t), [7], [0.0, -200.0 + 2 * t, 0.0, 2.0]))
            alerts = [a.alert_id for a in picture.incoming_alerts(float(t))]
            out.append((fused.links, fused.x.tolist(), fused.partner_pending.tolist(), alerts))
        return out
    assert scenario(restart=True) == scenario(restart=False)


def test_partner_only_tracks_carry_provenance_and_our_coordinates():
    picture = _picture()
    picture.ingest(_message(0.0, [_track("far", 100.0, -3000.0, 1.0, 2.0)]), TOPIC)
    fused = picture.fuse(_own(0.0, [], np.zeros((0, 4)), np.zeros((0, 4, 4))))
    (entry,) = picture.partner_only_tracks(fused)
    assert entry["origin"] == "node-a" and entry["track_id"] == "far" and entry["label"]["policy"] == "a-to-b"
    assert entry["east_m"] == pytest.approx(100.0, abs=0.01) and entry["north_m"] == pytest.approx(-3000.0, abs=0.01)
    lat, lon, _ = OURS.to_geodetic(100.0, -3000.0)
    assert entry["lat"] == pytest.approx(float(lat), abs=1e-7) and entry["lon"] == pytest.approx(float(lon), abs=1e-7)


def test_an_unforeseen_error_is_a_rejection_not_a_crash(monkeypatch):
    picture = _picture()

    def broken(*_):
        raise ZeroDivisionError("boom")
    monkeypatch.setattr(picture, "_local_tracks", broken)
    (rejection,) = picture.ingest(_message(1.0, [_track("p1", 0.0, -500.0)]), TOPIC)
    assert rejection.reason.startswith("could not be processed (ZeroDivisionError: boom)")
    assert picture.rejected == 1


def test_two_partners_on_one_track_are_fused_one_after_the_other():
    picture = _picture(confirm_scans=1)
    sharp_east, sharp_north = np.diag([20.0, 400.0, 2.0, 0.5]), np.diag([400.0, 20.0, 0.5, 2.0])
    picture.ingest(_message(0.0, [_track("pa", 5.0, -200.0, P=sharp_east)]), TOPIC)
    picture.ingest(_message(0.0, [_track("pc", -5.0, -195.0, P=sharp_north)], origin="node-c"),
                   "borderfusion/v1/partner/node-c/tracks")
    own = _own(0.0, [7], [0.0, -200.0, 0.0, 0.0])
    fused = picture.fuse(own)
    assert fused.links[0] == (("node-a", "pa"), ("node-c", "pc"))
    a, c = (picture.partner_tracks(o) for o in ("node-a", "node-c"))
    x1, P1, _ = covariance_intersection(own.x, own.P, a.x, a.P)
    x2, P2, _ = covariance_intersection(x1, P1, c.x, c.P)
    np.testing.assert_allclose(fused.x, x2, atol=1e-9)
    np.testing.assert_allclose(fused.P, P2, atol=1e-9)
    assert np.linalg.det(fused.P[0]) < np.linalg.det(P1[0]) < np.linalg.det(P_OWN)
