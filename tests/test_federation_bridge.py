"""Transport between sovereign brokers (issue 16): two real Mosquitto brokers on loopback, A bridged
to B with the bridge stanza and ACLs of ``configs/federation`` (TLS lines dropped: plain loopback)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.broker import PREFIX, Broker, write_passwords
from tests.conftest import ROOT

pytestmark = pytest.mark.broker
EXAMPLES = ROOT / "configs" / "federation"
PASSWORDS = {"pipeline": "node-secret", "edge-a": "bridge-a-secret", "edge-b": "bridge-b-secret"}


def bridge_stanza(example: str, address: str, password: str) -> str:
    """The example's bridge block (from ``connection`` on), pointed at ``address``, without TLS, and
    reconnecting every second (a test cannot wait for the example's back-off).  Written as a back-off
    of base 1 s and cap 1 s: Mosquitto 2.0.11 took a single ``restart_timeout 1`` and still waited its
    default jitter of 5–30 s between failed attempts, so B's return after the outage was noticed up to
    30 s late (the outage test failed 2 runs in 3 waiting 20 s)."""
    block = example[example.index("\nconnection "):]
    lines = []
    for line in block.splitlines():
        if re.match(r"^(bridge_cafile|bridge_certfile|bridge_keyfile|bridge_insecure)\b", line):
            continue
        line = re.sub(r"^address .*", f"address {address}", line)
        line = re.sub(r"^remote_password .*", f"remote_password {password}", line)
        line = re.sub(r"^restart_timeout .*", "restart_timeout 1 1", line)
        lines.append(line)
    return "\n".join(lines) + "\n"


class BridgedPair:
    """Country A's broker bridged to country B's, as ``configs/federation`` sets them up: A's bridge
    block from mosquitto-a.conf, both brokers with the example ACLs and a password per user."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        dirs = {side: directory / side for side in "ab"}
        extras = {}
        for side, folder in dirs.items():
            folder.mkdir(parents=True)
            shutil.copy(EXAMPLES / f"acl-{side}.acl", folder)
            partner = "edge-b" if side == "a" else "edge-a"
            write_passwords(folder / "passwd", {"pipeline": PASSWORDS["pipeline"], partner: PASSWORDS[partner]})
            extras[side] = (f"allow_anonymous false\npassword_file {folder / 'passwd'}\n"
                            f"acl_file {folder / ('acl-' + side + '.acl')}\n")
        self.b = Broker(dirs["b"], extras["b"]).start()
        stanza = bridge_stanza((EXAMPLES / "mosquitto-a.conf").read_text(), f"127.0.0.1:{self.b.port}",
                               PASSWORDS["edge-a"])
        self.a = Broker(dirs["a"], extras["a"] + stanza).start()

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


class Client:
    """A logged-in MQTT v5 client with a persistent session that keeps what its topics receive."""

    def __init__(self, port: int, user: str, topics: tuple[str, ...] = (), client_id: str | None = None) -> None:
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"{user}-{time.monotonic_ns()}")
        self.client.username_pw_set(user, PASSWORDS[user])
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        if topics:
            assert self.subscribed.wait(10), f"{user} could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload)))

    def of(self, topic: str) -> list[dict]:
        with self._lock:
            return [body for t, body in self.messages if t == topic]

    def publish(self, topic: str, body: dict, qos: int = 1) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, json.dumps(body), qos=qos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def pair(tmp_path):
    p = BridgedPair(tmp_path)
    yield p
    p.stop()


def _bridge_up(node_a: Client, node_b: Client, kind: str = "alerts") -> None:
    """Publish probes on A until one arrives at B (the bridge connects a moment after A starts);
    as the gateway does, alerts with QoS 1 and track snapshots with QoS 0."""
    def arrived() -> bool:
        node_a.publish(f"{PREFIX}/release/edge-b/{kind}", {"probe": True}, qos=1 if kind == "alerts" else 0)
        return wait_for(lambda: node_b.of(f"{PREFIX}/partner/edge-a/{kind}"), 0.5)
    assert wait_for(arrived, 20), "the bridge did not carry a probe within 20 s"


def test_a_release_on_a_arrives_as_a_partner_topic_on_b(pair):
    node_a = Client(pair.a.port, "pipeline")
    node_b = Client(pair.b.port, "pipeline", (f"{PREFIX}/partner/#",))
    try:
        _bridge_up(node_a, node_b)
        node_a.publish(f"{PREFIX}/release/edge-b/tracks", {"origin": "edge-a", "tracks": []}, qos=0)
        node_a.publish(f"{PREFIX}/release/edge-c/tracks", {"for": "someone else"}).wait_for_publish(5)
        node_a.publish(f"{PREFIX}/tracks", {"own": "picture"}).wait_for_publish(5)
        assert wait_for(lambda: node_b.of(f"{PREFIX}/partner/edge-a/tracks"), 10)
        time.sleep(0.5)  # what else might come has had time
        assert node_b.of(f"{PREFIX}/partner/edge-a/tracks") == [{"origin": "edge-a", "tracks": []}]
        # only A's release for B crosses: not a release for a third partner, not A's own picture
        assert {t for t, _ in node_b.messages} == {f"{PREFIX}/partner/edge-a/alerts", f"{PREFIX}/partner/edge-a/tracks"}
    finally:
        node_a.close()
        node_b.close()


def test_a_partner_credential_writes_only_its_own_partner_topics(pair):
    """B issues A one credential: with it A's bridge (or anyone holding it) can pose neither as
    another partner nor as B's own node."""
    spy = Client(pair.b.port, "pipeline", (f"{PREFIX}/partner/#", f"{PREFIX}/status/#"))
    intruder = Client(pair.b.port, "edge-a")
    try:
        for topic in (f"{PREFIX}/partner/edge-c/tracks", f"{PREFIX}/status/edge-b", f"{PREFIX}/partner/edge-a/tracks"):
            intruder.publish(topic, {"from": "edge-a credential"}).wait_for_publish(5)
        assert wait_for(lambda: spy.of(f"{PREFIX}/partner/edge-a/tracks"), 10)
        time.sleep(0.5)
        assert {t for t, _ in spy.messages} == {f"{PREFIX}/partner/edge-a/tracks"}
    finally:
        spy.close()
        intruder.close()


OUTAGE_S = 30.0  # the goal: 0 messages lost across a bridge outage of 30 s


def test_an_outage_of_30_s_loses_no_released_alert_and_the_partner_picture_resumes(pair):
    """B's broker down 30 s (the link cut), A releasing all along as a node does (an alert and a track
    snapshot every 0.2 s): B back, every released alert arrives, in order, and track snapshots (QoS 0:
    each supersedes the last, so those of the outage may go) flow again with the newest."""
    node_a = Client(pair.a.port, "pipeline")
    node_b = Client(pair.b.port, "pipeline", (f"{PREFIX}/partner/#",), client_id="node-b-ingress")
    alerts, tracks = f"{PREFIX}/partner/edge-a/alerts", f"{PREFIX}/partner/edge-a/tracks"
    try:
        _bridge_up(node_a, node_b)
        pair.b.stop()
        down_at = time.monotonic()
        n = 0  # 150: more than the broker's inflight window (100), so some wait in the queue proper
        while time.monotonic() - down_at < OUTAGE_S:
            node_a.publish(f"{PREFIX}/release/edge-b/alerts", {"seq": n}).wait_for_publish(5)
            node_a.publish(f"{PREFIX}/release/edge-b/tracks", {"seq": n}, qos=0)
            n += 1
            time.sleep(max(0.0, down_at + 0.2 * n - time.monotonic()))
        assert node_b.of(alerts) == [] or all("probe" in m for m in node_b.of(alerts))  # the link was down
        pair.b.start()
        got = lambda: [m["seq"] for m in node_b.of(alerts) if "seq" in m]  # noqa: E731
        assert wait_for(lambda: len(got()) >= n, 20), f"{len(got())} of {n} alerts arrived"
        assert got() == list(range(n)), "lost, duplicated or reordered"
        # the partner picture resumes: A's next snapshots reach B, newest last
        for k in range(n, n + 10):
            node_a.publish(f"{PREFIX}/release/edge-b/tracks", {"seq": k}, qos=0)
            time.sleep(0.1)
        assert wait_for(lambda: any(m.get("seq") == n + 9 for m in node_b.of(tracks)), 10), node_b.of(tracks)[-3:]
        assert n >= 140
    finally:
        node_a.close()
        node_b.close()


def test_country_as_node_reaches_country_bs_broker_through_the_example_configuration(tmp_path):
    """``borderfusion run`` with the example site of country A (its sensors only, its agreement with B),
    on A's broker bridged to B's: B's node sees A's released picture on partner/edge-a/…, in the
    contract's fields, coarsened, pseudonymous, with no sensor named."""
    from fusion.config import load_site
    from fusion.mqtt import publish_log
    from fusion.simulate import simulate
    from tests.broker import running_node, stop_node

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    pair = BridgedPair(tmp_path / "brokers")
    acl = pair.a.directory / "acl-a.acl"  # a test feeder may write every sensor's raw topic
    acl.write_text(acl.read_text() + "\nuser feeder\ntopic write borderfusion/v1/raw/#\n")
    write_passwords(pair.a.directory / "passwd", {"pipeline": PASSWORDS["pipeline"], "edge-b": PASSWORDS["edge-b"],
                                                  "feeder": "feeder-secret"})
    pair.a.stop()
    pair.a.start()
    site_dir = tmp_path / "configs" / "federation" / "country-a"
    (site_dir / "keys").mkdir()
    for name, secret in (("keys/edge-b.key", os.urandom(32)), ("pipeline.pw", PASSWORDS["pipeline"].encode()),
                         ("feeder.pw", b"feeder-secret")):
        (site_dir / name).write_bytes(secret)
        os.chmod(site_dir / name, 0o600)
    text = (site_dir / "site.toml").read_text().replace("port = 1883", f"port = {pair.a.port}")
    node_site = site_dir / "site.toml"
    node_site.write_text(text.replace('outbox = "outbox"', 'outbox = "outbox"\nusername = "pipeline"\n'
                                                           'password_file = "pipeline.pw"'))
    feeder_site = site_dir / "feeder.toml"
    feeder_site.write_text(text.replace('outbox = "outbox"', 'outbox = "outbox"\nusername = "feeder"\n'
                                                             'password_file = "feeder.pw"'))
    site = load_site(node_site)
    log = tmp_path / "a.jsonl.gz"
    simulate(site, 150.0, log, None, seed=11, n_targets=10)
    node_b = Client(pair.b.port, "pipeline", (f"{PREFIX}/partner/#",))
    ops = Client(pair.a.port, "pipeline", (f"{PREFIX}/status/edge-a",))
    tracks = f"{PREFIX}/partner/edge-a/tracks"
    try:
        with running_node(node_site) as node:
            assert wait_for(lambda: any(s.get("state") == "online" for s in ops.of(f"{PREFIX}/status/edge-a"))
                            or node.poll() is not None, 60), "node edge-a not online"
            assert node.poll() is None, node.communicate()
            publish_log(load_site(feeder_site), log)
            assert wait_for(lambda: sum(len(m["tracks"]) for m in node_b.of(tracks)) > 20, 60), node_b.messages[-3:]
            code, err = stop_node(node)
        assert code == 0, err
    finally:
        node_b.close()
        ops.close()
        pair.stop()
    (policy,) = site.config.federation.partners
    sensor_ids = [s.spec.id for s in site.sensors]
    for message in node_b.of(tracks):
        assert message["origin"] == "edge-a" and message["label"]["originator"] == "edge-a"
        assert message["label"]["policy"] == policy.policy_id and message["label"]["releasable_to"] == []
        assert not any(f'"{s}"' in json.dumps(message) for s in sensor_ids)
        for track in message["tracks"]:
            assert list(track) == ["track_id", "status", "lat", "lon", "vel_east_mps", "vel_north_mps", "covariance",
                                   "classification", "existence", "first_seen", "last_update"]
            assert not track["track_id"].startswith("edge-a") and len(track["track_id"]) == 20
            east, north, _ = site.frame.to_enu(track["lat"], track["lon"])
            for value in (float(east), float(north)):
                assert abs(value - policy.grid_m * round(value / policy.grid_m)) < 0.1
    assert {t for t, _ in node_b.messages} <= {tracks, f"{PREFIX}/partner/edge-a/alerts"}
