"""``borderfusion run`` with a ``[web]`` table, against a real Mosquitto: the map feed and the acks topic."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time

import aiohttp
import paho.mqtt.client as mqtt
import pytest

from fusion.config import load_site
from fusion.mqtt import publish_log
from tests.broker import PREFIX, Collector, free_port, running_node, stop_node, wait_online
from tests.test_web import TOKENS, unbatch, write_tokens

pytestmark = pytest.mark.broker


class FeedReader:
    """One browser's feed in a thread: every frame, and a way to send commands."""

    def __init__(self, url: str) -> None:
        self.frames: list[dict] = []
        self.outgoing: list[dict] = []
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(url)), daemon=True)
        self.thread.start()
        assert self.connected.wait(15), "the feed did not connect"

    async def _run(self, url: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                self.connected.set()
                while not self.stop.is_set():
                    while self.outgoing:
                        await ws.send_str(json.dumps(self.outgoing.pop(0)))
                    try:
                        message = await ws.receive(timeout=0.1)
                    except asyncio.TimeoutError:
                        continue
                    if message.type != aiohttp.WSMsgType.TEXT:
                        return
                    self.frames.extend(unbatch(json.loads(message.data)))
                    if self.frames[-1]["type"] == "snapshot":  # drawn at once, as a fast browser would
                        await ws.send_str(json.dumps({"type": "drawn", "t": self.frames[-1]["t"]}))

    def of(self, kind: str) -> list[dict]:
        return [f for f in list(self.frames) if f["type"] == kind]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def test_live_node_feeds_the_map_per_agency_and_carries_acks_over_mqtt(broker, live_site, short_log, tmp_path):
    log, expected = short_log
    port = free_port()
    write_tokens(live_site.parent)
    live_site.write_text(live_site.read_text() + f'\n[web]\nlisten = "127.0.0.1:{port}"\ntokens = "tokens.toml"\n')
    acks_seen = Collector(broker.port, [f"{PREFIX}/acks/+"], "acks-watch")
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-web")
    with running_node(live_site) as node:
        wait_online(ops, node)
        feed_b = FeedReader(f"http://127.0.0.1:{port}/ws?token={TOKENS['agency-b']}")
        feed_b2 = FeedReader(f"http://127.0.0.1:{port}/ws?token={TOKENS['agency-b']}")
        publish_log(load_site(live_site), log)
        want_b = {a.alert_id for a in expected.alerts if "agency-b" in a.recipients}
        assert want_b
        assert feed_b.wait_for(lambda: {f["alert"]["alert_id"] for f in feed_b.of("alert")} >= want_b, 60)
        assert feed_b.of("snapshot"), "no track snapshot reached the map"
        assert all("agency-b" in f["alert"]["recipients"] for f in feed_b.of("alert"))
        assert feed_b.wait_for(lambda: feed_b.of("status"), 10)
        # an operator acknowledges: published QoS 1 on PREFIX/acks/agency-b, shown to the other desk
        alert_id = sorted(want_b)[0]
        feed_b.outgoing.append({"type": "ack", "alert_id": alert_id, "state": "acknowledged"})
        assert acks_seen.wait_for(lambda: acks_seen.of(f"{PREFIX}/acks/agency-b"), 10)
        published = acks_seen.of(f"{PREFIX}/acks/agency-b")[0]
        assert published["alert_id"] == alert_id and published["state"] == "acknowledged"
        assert published["agency_id"] == "agency-b" and published["operator"] == "desk-agency-b" and published["t"] > 0
        assert feed_b2.wait_for(lambda: any(f["ack"]["alert_id"] == alert_id for f in feed_b2.of("ack")), 10)
        # an ack made on another node's map arrives over MQTT and is shown here
        other = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="other-node", protocol=mqtt.MQTTv5)
        other.connect("127.0.0.1", broker.port)
        other.loop_start()
        remote = {"alert_id": sorted(want_b)[-1], "agency_id": "agency-b", "state": "dismissed",
                  "operator": "night-desk", "t": 1795000000.0}
        other.publish(f"{PREFIX}/acks/agency-b", json.dumps(remote), qos=1).wait_for_publish(5)
        other.publish(f"{PREFIX}/acks/agency-b", b'{"alert_id": 3}', qos=1).wait_for_publish(5)  # ignored, logged
        assert feed_b2.wait_for(lambda: any(f["ack"]["operator"] == "night-desk" for f in feed_b2.of("ack")), 10)
        other.disconnect()
        other.loop_stop()
        for feed in (feed_b, feed_b2):
            feed.close()
        code, err = stop_node(node)
    assert code == 0, err
    assert "ignored an ack on borderfusion/v1/acks/agency-b" in err  # logged at WARNING, the node kept going
    stored = sqlite3.connect(tmp_path / "outbox" / "edge-1-acks.sqlite").execute(
        "SELECT alert_id, agency_id, state, operator FROM acks ORDER BY t").fetchall()
    assert (alert_id, "agency-b", "acknowledged", "desk-agency-b") in stored
    assert (remote["alert_id"], "agency-b", "dismissed", "night-desk") in stored
    acks_seen.close()
    ops.close()
