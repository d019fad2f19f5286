"""Sharing agreements and the egress gateway (issue 16, egress): config checks, the pure rules,
originator control, and leak tests of a whole simulated run against an independent auditor."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.config import ConfigError, load_site
from fusion.federation import gateway as gw
from fusion.federation.audit import Auditor
from fusion.federation.gateway import (Gateway, Label, class_released, coarsen, compile_policies, inflate_covariance,
                                       may_release, onward_label, pseudonym, release_alert, release_tracks)
from fusion.pipeline import Outputs
from fusion.replay import replay_file
from tests.conftest import DEMO_SITE

AGREEMENT = """
[[federation.partners]]
partner_id = "edge-b"
policy_id = "a-to-b-test"
jurisdictions = ["country-a", "country-b", "sector-east"]
border = ["country-a", "country-b"]
max_border_distance_m = 1500.0
classes = ["person", "unknown"]
statuses = ["confirmed", "coasting"]
alert_types = ["border_crossing"]
grid_m = 100.0
key_file = "keys/edge-b.key"
"""


def make_site(directory, agreement: str = AGREEMENT, key: bytes = b"k" * 32, mode: int = 0o600):
    """The demo site with ``agreement`` appended and its key file written; returns site.toml."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_SITE.parent / "jurisdictions.geojson", directory)
    (directory / "site.toml").write_text(DEMO_SITE.read_text() + agreement)
    (directory / "keys").mkdir(exist_ok=True)
    key_path = directory / "keys" / "edge-b.key"
    key_path.write_bytes(key)
    os.chmod(key_path, mode)
    return directory / "site.toml"


# -- the site file ----------------------------------------------------------------------
def test_agreement_loads_typed_with_restrictive_defaults(tmp_path):
    site = load_site(make_site(tmp_path))
    (p,) = site.config.federation.partners
    assert p.partner_id == "edge-b" and p.grid_m == 100.0 and p.classes == ["person", "unknown"]
    assert p.releasable_to == () and p.delay_s == 0.0 and p.alert_types == ("border_crossing",)
    assert load_site(make_site(tmp_path / "defaults", AGREEMENT.replace('statuses = ["confirmed", "coasting"]\n', ""))
                     ).config.federation.partners[0].statuses == ("confirmed", "coasting")
    assert load_site(DEMO_SITE).config.federation.partners == ()  # no agreement: nothing is released


@pytest.mark.parametrize("old, new, field", [
    ("grid_m = 100.0", "grid_m = 0.0", "federation.partners[0].grid_m"),
    ("grid_m = 100.0", "grid_m = 100.0\ncolour = 1", "federation.partners[0]"),
    ('classes = ["person", "unknown"]', 'classes = ["person", "tank"]', "federation.partners[0].classes[1]"),
    ('"sector-east"]', '"sector-west"]', "federation.partners[0].jurisdictions[2]"),
    ('border = ["country-a", "country-b"]', 'border = ["country-a", "depot-zone"]', "federation.partners[0].border[1]"),
    ('border = ["country-a", "country-b"]', 'border = ["country-a", "country-a"]', "federation.partners[0].border"),
    ('partner_id = "edge-b"', 'partner_id = "edge-1"', "federation.partners[0].partner_id"),
    ('alert_types = ["border_crossing"]', 'alert_types = ["crossing"]', "federation.partners[0].alert_types[0]"),
    ("max_border_distance_m = 1500.0", "max_border_distance_m = -1.0", "federation.partners[0].max_border_distance_m"),
    ('key_file = "keys/edge-b.key"', 'key_file = "keys/none.key"', "federation.partners[0].key_file"),
])
def test_a_bad_agreement_stops_start_up_naming_file_and_field(tmp_path, old, new, field):
    path = make_site(tmp_path, AGREEMENT.replace(old, new))
    with pytest.raises(ConfigError) as error:
        load_site(path)
    assert str(path) in str(error.value) and field in str(error.value), error.value


def test_a_second_agreement_with_the_same_partner_is_refused(tmp_path):
    path = make_site(tmp_path, AGREEMENT + AGREEMENT)
    with pytest.raises(ConfigError, match=r"federation.partners\[1\].partner_id: a second agreement"):
        load_site(path)


@pytest.mark.parametrize("key, mode, why", [(b"k" * 32, 0o644, "chmod 600"),
                                           (b"short", 0o600, "at least 16 are needed")])
def test_a_key_file_others_can_read_or_too_short_is_refused(tmp_path, key, mode, why):
    with pytest.raises(ConfigError, match=why):
        load_site(make_site(tmp_path, key=key, mode=mode))


# -- the pure rules ---------------------------------------------------------------------
def test_pseudonyms_are_stable_per_key_and_unlinkable_across_partners():
    a, b = b"a" * 32, b"b" * 32
    assert pseudonym(a, "edge-1-17") == pseudonym(a, "edge-1-17")
    assert pseudonym(a, "edge-1-17") != pseudonym(b, "edge-1-17")
    assert pseudonym(a, "edge-1-17") != pseudonym(a, "edge-1-18")
    assert len(pseudonym(a, "edge-1-17")) == 20 and "edge" not in pseudonym(a, "edge-1-17")


@given(st.floats(-50_000, 50_000), st.floats(-50_000, 50_000), st.sampled_from([1.0, 25.0, 100.0, 333.0]))
def test_coarsening_snaps_to_the_grid_within_half_a_cell(east, north, grid):
    ce, cn = coarsen(np.array([east]), np.array([north]), grid)
    for exact, snapped in ((east, ce[0]), (north, cn[0])):
        assert abs(snapped / grid - round(snapped / grid)) < 1e-9
        assert abs(snapped - exact) <= grid / 2 + 1e-9


def test_snap_error_variance_is_the_inflation_so_the_released_covariance_is_consistent():
    """Estimates with covariance P, snapped to Δ: the error to the truth has covariance P + Δ²/12·I
    (NEES of the released estimate ≈ 2 over the position block); without the inflation it is far above."""
    rng = np.random.default_rng(7)
    grid, n = 200.0, 40_000
    P = np.array([[400.0, 50.0], [50.0, 300.0]])
    truth = rng.uniform(-5000, 5000, (n, 2))
    estimate = truth + rng.multivariate_normal([0, 0], P, n)
    snapped = np.column_stack(coarsen(estimate[:, 0], estimate[:, 1], grid))
    full = np.zeros((4, 4))
    full[:2, :2] = P
    inflated = inflate_covariance(full, grid)[:2, :2]
    assert np.allclose(inflate_covariance(full, grid)[2:, :], full[2:, :])  # velocity untouched
    err = snapped - truth
    nees = np.einsum("ni,ij,nj->n", err, np.linalg.inv(inflated), err).mean()
    naive = np.einsum("ni,ij,nj->n", err, np.linalg.inv(P), err).mean()
    assert abs(nees - 2.0) < 0.05 and naive > 3.0
    assert np.allclose(np.var(snapped - estimate, axis=0), grid ** 2 / 12, rtol=0.03)


def test_class_rule_takes_every_most_probable_class():
    assert class_released({"person": 0.8, "vehicle": 0.1}, ["person"])
    assert not class_released({"person": 0.1, "vehicle": 0.8}, ["person"])
    assert not class_released({"person": 0.45, "vehicle": 0.45}, ["person"])  # a tie is not "a person"
    assert class_released({c: 0.2 for c in ("person", "vehicle", "animal", "uav", "unknown")}, ["unknown"])
    assert class_released({}, ["unknown"]) and not class_released({}, ["person"])


# -- originator control -----------------------------------------------------------------
def test_originator_control_truth_table():
    own = Label(None, "edge-1")
    assert may_release(own, "edge-b", "edge-1")
    theirs = Label("b-policy", "edge-b", ("edge-c",))
    assert may_release(theirs, "edge-c", "edge-1")  # named by the originator
    assert not may_release(theirs, "edge-d", "edge-1")  # a third party not named
    assert not may_release(theirs, "edge-b", "edge-1")  # never echoed back to the originator
    assert not may_release(Label("b-policy", "edge-b", ("edge-b", "edge-c")), "edge-b", "edge-1")  # even if listed
    assert not may_release(Label(None, "edge-b"), "edge-c", "edge-1")  # no label: nobody


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["edge-b", "edge-c", "edge-d", "edge-e"]), unique=True),
       st.lists(st.sampled_from(["edge-b", "edge-c", "edge-d", "edge-e"]), unique=True),
       st.sampled_from(["edge-c", "edge-d"]))
def test_an_onward_label_is_never_wider_than_the_originators(tmp_path_factory, theirs, ours, partner):
    policy = _policy_with(tmp_path_factory, releasable_to=tuple(ours), partner=partner)
    label = onward_label(policy, Label("b-policy", "edge-b", tuple(theirs)))
    assert label.originator == "edge-b"
    assert set(label.releasable_to) <= set(theirs) & set(ours) and partner not in label.releasable_to


_POLICIES: dict = {}


def _policy_with(tmp_path_factory, releasable_to=(), partner="edge-b", **changes):
    """The test agreement's policy with some fields changed (the site is loaded once)."""
    if "base" not in _POLICIES:
        _POLICIES["base"] = compile_policies(load_site(make_site(tmp_path_factory.mktemp("site"))))[0]
    base = _POLICIES["base"]
    agreement = msgspec.structs.replace(base.agreement, partner_id=partner, releasable_to=tuple(releasable_to),
                                        **changes)
    return dataclasses.replace(base, agreement=agreement)


def _track(site_frame, track_id, east, north, **fields):
    lat, lon, _ = site_frame.to_geodetic(east, north)
    cov = np.diag([100.0, 100.0, 1.0, 1.0]).tolist()
    return {"track_id": track_id, "status": "confirmed", "lat": float(lat), "lon": float(lon), "east_m": east,
            "north_m": north, "vel_east_mps": 1.0, "vel_north_mps": 0.0, "covariance": cov,
            "classification": {"person": 0.9}, "existence": 0.99, "jurisdiction": "country-a",
            "sensors": ["radar-n1"], "first_seen": 1.0, "last_update": 2.0, **fields}


def test_a_partners_track_goes_to_a_third_party_only_if_its_label_names_it(tmp_path_factory):
    policy = _policy_with(tmp_path_factory, releasable_to=("edge-c",), partner="edge-c")
    near_border = (-3000.0, -100.0)  # country A, a few hundred metres from the river
    own = _track(policy.frame, "edge-1-1", *near_border)
    allowed = _track(policy.frame, "edge-b-9", *near_border,
                     label={"policy": "b", "originator": "edge-b", "releasable_to": ["edge-c"]})
    refused = _track(policy.frame, "edge-b-10", *near_border,
                     label={"policy": "b", "originator": "edge-b", "releasable_to": ["edge-d"]})
    unlabelled = _track(policy.frame, "edge-b-11", *near_border, source="edge-b")
    message = release_tracks({"t": 5.0, "tracks": [own, allowed, refused, unlabelled]}, policy)
    # the label in the contract's words (interface §7): the site file's policy_id goes out as `policy`
    assert message["label"] == {"policy": "a-to-b-test", "originator": "edge-1", "releasable_to": ["edge-c"]}
    released = message["tracks"]
    ids = {tr["track_id"] for tr in released}
    assert ids == {pseudonym(policy.key, "edge-1-1"), pseudonym(policy.key, "edge-b-9")}
    passed_on = next(tr for tr in released if tr["track_id"] == pseudonym(policy.key, "edge-b-9"))
    assert passed_on["label"] == {"policy": "a-to-b-test", "originator": "edge-b", "releasable_to": []}
    # and an alert about a partner's track, with the partner as its source, is not passed on
    alert = {"alert_id": "x" * 32, "type": "border_crossing", "t": 1.0, "raised_t": 1.0, "track_id": "edge-b-10",
             "lat": own["lat"], "lon": own["lon"], "jurisdiction": "country-a", "classification": {"person": 0.9},
             "source": "edge-b"}
    assert release_alert(alert, policy) is None
    assert release_alert({**alert, "source": "own", "track_id": "edge-1-1"}, policy) is not None


def test_a_delay_holds_releases_for_that_much_data_time(tmp_path_factory):
    policy = _policy_with(tmp_path_factory, delay_s=5.0)
    gateway = Gateway((policy,))
    assert gateway.on_snapshot({"t": 100.0, "tracks": []}) == []
    assert gateway.on_snapshot({"t": 104.0, "tracks": []}) == []
    out = gateway.on_snapshot({"t": 105.0, "tracks": []})
    assert [json.loads(r.payload)["t"] for r in out] == [100.0]


# -- leak tests over a whole simulated run ----------------------------------------------
@pytest.fixture(scope="module")
def federated_run(tmp_path_factory, demo_log):
    """The demo log through the pipeline of a site with the agreement, and what the gateway releases."""
    path = make_site(tmp_path_factory.mktemp("fed-site"))
    path.write_text(path.read_text().replace("[outputs]", "[outputs]\ninclude_tentative = true"))
    site = load_site(path)
    out = Outputs()
    replay_file(site, demo_log[0], keep=out, progress=False)
    snapshots = [s.to_dict() for s in out.snapshots]
    alerts = [a.to_dict() for a in out.alerts]
    return site, snapshots, alerts


def _release_all(site, snapshots, alerts):
    gateway = Gateway(compile_policies(site))
    releases = []
    for snapshot in snapshots:
        releases += gateway.on_snapshot(snapshot)
    releases += gateway.on_alerts(alerts)
    return releases


def _audit(site, snapshots, alerts, releases) -> Auditor:
    (policy,) = compile_policies(site)
    auditor = Auditor(site, policy.agreement, policy.key)
    by_t = {s["t"]: s for s in snapshots}
    for r in releases:
        if r.topic.endswith("/tracks"):
            auditor.tracks(r.topic, r.payload, by_t[json.loads(r.payload)["t"]])
        else:
            auditor.alert(r.topic, r.payload, alerts)
    return auditor


def test_nothing_outside_the_agreement_leaks(federated_run):
    site, snapshots, alerts = federated_run
    releases = _release_all(site, snapshots, alerts)
    auditor = _audit(site, snapshots, alerts, releases)
    assert auditor.violations == []
    released_tracks = sum(len(json.loads(r.payload)["tracks"]) for r in releases if r.topic.endswith("/tracks"))
    released_alerts = [json.loads(r.payload) for r in releases if r.topic.endswith("/alerts")]
    assert released_tracks > 50 and released_alerts and auditor.checked == released_tracks + len(released_alerts)
    assert {r.topic for r in releases} <= {"borderfusion/v1/release/edge-b/tracks",
                                           "borderfusion/v1/release/edge-b/alerts"}

    # the run offers every kind of thing the agreement withholds, so each rule was put to the test
    policy = compile_policies(site)[0]
    tracks = [tr for s in snapshots for tr in s["tracks"]]
    xy = np.array([[tr["east_m"], tr["north_m"]] for tr in tracks])
    in_depot = policy.index.inside(xy)[:, [j.id for j in site.jurisdictions].index("depot-zone")]
    far = gw.border_distance_m(policy, xy) > 1500.0
    vehicles = np.array([not class_released(tr["classification"], ["person", "unknown"]) for tr in tracks])
    offered = collections.Counter(a["type"] for a in alerts)
    tentative = sum(tr["status"] == "tentative" for tr in tracks)
    assert in_depot.sum() > 0 and far.sum() > 0 and vehicles.sum() > 0 and tentative > 0, \
        (in_depot.sum(), far.sum(), vehicles.sum(), tentative)
    assert offered["approach"] > 0 and offered["zone_entry"] > 0 and offered["border_crossing"] > 0
    assert {a["type"] for a in released_alerts} == {"border_crossing"}


@pytest.mark.parametrize("rule, broken", [
    ("class", lambda mp: mp.setattr(gw, "class_released", lambda c, classes: True)),
    ("place", lambda mp: mp.setattr(gw, "releasable_positions", lambda p, xy: np.ones(len(xy), bool))),
    ("distance", lambda mp: mp.setattr(gw, "border_distance_m", lambda p, xy, inside=None: np.zeros(len(xy)))),
    ("coarsening", lambda mp: mp.setattr(gw, "coarsen", lambda e, n, grid: (np.asarray(e), np.asarray(n)))),
    ("inflation", lambda mp: mp.setattr(gw, "inflate_covariance", lambda c, grid: np.asarray(c))),
    ("fields", lambda mp: mp.setattr(gw, "ALERT_FIELDS", gw.ALERT_FIELDS + ("recipients", "sensors"))),
    ("pseudonym", lambda mp: mp.setattr(gw, "pseudonym", lambda key, ident, digits=20: ident)),
])
def test_the_auditor_catches_a_gateway_with_a_rule_broken(federated_run, monkeypatch, rule, broken):
    """Mutation check kept in the suite: break one rule of the gateway, the leak test sees it."""
    site, snapshots, alerts = federated_run
    broken(monkeypatch)
    if rule == "fields":  # make the one alert type the agreement releases carry what must be stripped
        alerts = [{**a, "recipients": ["agency-a"], "sensors": ["radar-n1"]} for a in alerts]
    auditor = _audit(site, snapshots, alerts, _release_all(site, snapshots, alerts))
    assert auditor.violations, f"breaking the {rule} rule went unnoticed"


def test_released_alert_is_the_contract_payload(federated_run):
    site, snapshots, alerts = federated_run
    (policy,) = compile_policies(site)
    released = [m for a in alerts if (m := release_alert(a, policy)) is not None]
    assert released
    for message in released:
        assert "recipients" not in message and "sensors" not in message
        assert message["origin"] == "edge-1" and message["label"]["releasable_to"] == []
        assert message["label"] == {"policy": "a-to-b-test", "originator": "edge-1", "releasable_to": []}
        assert message["type"] == "border_crossing"
        original = next(a for a in alerts if pseudonym(policy.key, f"alert|{a['alert_id']}", 32) == message["alert_id"])
        assert message["track_id"] == pseudonym(policy.key, original["track_id"])
        assert (message["lat"], message["lon"]) != (original["lat"], original["lon"])


# -- the live node -----------------------------------------------------------------------
@pytest.mark.broker
def test_a_live_node_releases_only_through_the_gateway_and_nothing_leaks(tmp_path, broker, short_log):
    """``borderfusion run`` with an agreement: the partner's topics get released tracks and alerts that
    the auditor holds against the node's own snapshots and alerts, with 0 violations."""
    from fusion.mqtt import publish_log
    from tests.broker import PREFIX, Collector, running_node, stop_node, wait_online

    path = make_site(tmp_path / "site")
    path.write_text(path.read_text().replace("port = 1883", f'port = {broker.port}\noutbox = "{tmp_path / "outbox"}"'))
    site = load_site(path)
    watch = Collector(broker.port, [f"{PREFIX}/release/#", f"{PREFIX}/tracks", f"{PREFIX}/alerts/+",
                                    f"{PREFIX}/status/+"], "fed-watch")
    try:
        with running_node(path) as node:
            wait_online(watch, node)
            publish_log(site, short_log[0])
            want = len(short_log[1].snapshots)
            watch.wait_for(lambda: len(watch.of(f"{PREFIX}/release/edge-b/tracks")) >= want, 60)
            code, err = stop_node(node)
        assert code == 0, err
    finally:
        watch.close()
    snapshots = {s["t"]: s for s in watch.of(f"{PREFIX}/tracks")}
    alerts = list({a["alert_id"]: a for t, a in watch.messages if t.startswith(f"{PREFIX}/alerts/")}.values())
    (policy,) = compile_policies(site)
    auditor = Auditor(site, policy.agreement, policy.key)
    released = [(t, m) for t, m in watch.messages if t.startswith(f"{PREFIX}/release/")]
    assert {t for t, _ in released} == {f"{PREFIX}/release/edge-b/tracks", f"{PREFIX}/release/edge-b/alerts"}
    matched = 0
    for topic, message in released:
        payload = json.dumps(message).encode()
        if topic.endswith("/alerts"):
            auditor.alert(topic, payload, alerts)
        elif message["t"] in snapshots:
            matched += 1
            auditor.tracks(topic, payload, snapshots[message["t"]])
    assert auditor.violations == []
    assert matched >= 0.9 * len(short_log[1].snapshots) and auditor.checked > 20


def test_the_example_sites_of_both_countries_load_once_their_keys_exist(tmp_path):
    shutil.copytree(DEMO_SITE.parent.parent, tmp_path / "configs")
    for side, partner in (("a", "edge-b"), ("b", "edge-a")):
        folder = tmp_path / "configs" / "federation" / f"country-{side}"
        with pytest.raises(ConfigError, match=r"federation.partners\[0\].key_file"):
            load_site(folder / "site.toml")  # as shipped: no secret in the repository
        (folder / "keys").mkdir()
        (folder / "keys" / f"{partner}.key").write_bytes(os.urandom(32))
        os.chmod(folder / "keys" / f"{partner}.key", 0o600)
        site = load_site(folder / "site.toml")
        assert [p.partner_id for p in site.config.federation.partners] == [partner]
        assert site.node_id == f"edge-{side}"


def test_what_arrives_on_a_partner_topic_is_the_partners_and_goes_nowhere_else_unless_labelled():
    prefix = "borderfusion/v1"
    assert gw.provenance_of_received(f"{prefix}/tracks", {}, prefix) is None  # our own topic
    bare = gw.provenance_of_received(f"{prefix}/partner/edge-b/tracks", {"tracks": []}, prefix)
    assert bare == Label(None, "edge-b", ())
    assert not may_release(bare, "edge-c", "edge-1")
    labelled = gw.provenance_of_received(
        f"{prefix}/partner/edge-b/alerts",
        {"label": {"policy": "b-1", "originator": "edge-b", "releasable_to": ["edge-c"]}}, prefix)
    assert labelled == Label("b-1", "edge-b", ("edge-c",))
    assert may_release(labelled, "edge-c", "edge-1") and not may_release(labelled, "edge-d", "edge-1")
    relayed = gw.provenance_of_received(  # B passes on what A released to it: A stays the originator
        f"{prefix}/partner/edge-b/tracks", {"label": {"policy": "a-1", "originator": "edge-a",
                                                       "releasable_to": "edge-c"}}, prefix)
    assert relayed == Label("a-1", "edge-a", ())  # a malformed releasable_to allows nobody


def test_the_sink_fails_closed_and_the_node_goes_on(tmp_path_factory, caplog):
    published = []
    sink = gw.ReleaseSink(Gateway((_policy_with(tmp_path_factory),)), lambda *m: published.append(m))
    sink.on_snapshot({"t": 1.0, "tracks": [{"status": "confirmed", "classification": {"person": 1.0}}]})  # no lat
    assert published == [] and sink.failed == 1 and "not released" in caplog.text
    sink.on_snapshot({"t": 2.0, "tracks": []})
    assert [json.loads(p[1])["t"] for p in published] == [2.0]


def test_a_snapshot_the_node_shed_is_not_released_but_still_reaches_the_map(tmp_path_factory):
    """The node sheds a snapshot its bulk link cannot take (``fusion.mqtt``); the gateway releases only
    what the node published, so an auditor holds every release against its original (a live two-node
    run under load once released a snapshot no observer could see), while the map still gets it."""
    from fusion.web.sinks import hand_snapshot

    released, drawn = [], []
    sink = gw.ReleaseSink(Gateway((_policy_with(tmp_path_factory),)), lambda *m: released.append(m))
    map_like = SimpleNamespace(on_snapshot_json=drawn.append)
    hand_snapshot([sink, map_like], b'{"t": 1.0, "tracks": []}', published=False)
    assert released == [] and drawn == [b'{"t": 1.0, "tracks": []}']
    hand_snapshot([sink, map_like], b'{"t": 2.0, "tracks": []}')
    assert [json.loads(p[1])["t"] for p in released] == [2.0] and len(drawn) == 2
