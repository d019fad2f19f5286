"""One sensor floods the live node (real Mosquitto): it loses its own data, the others keep theirs."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from fusion.config import load_site
from fusion.logio import read_log
from fusion.mqtt import publish_log
from tests.broker import PREFIX, Broker, Collector, running_node, stop_node, wait_online, write_site
from tests.test_mqtt_faults import radar_flood

pytestmark = pytest.mark.broker


def test_a_flooding_sensor_is_shed_first_and_the_others_keep_their_data(tmp_path, short_log, request):
    log, _ = short_log
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", max_inflight=0).start()  # the node itself meets the flood
    request.addfinalizer(broker.stop)
    site_path = write_site(tmp_path / "site", broker.port, outbox=tmp_path / "outbox", mqtt_extra="queue_size = 40")
    good_total = sum(1 for r in read_log(log) if "/radar-n1" not in r.topic)
    t_first = next(iter(read_log(log))).t_rx
    flood = radar_flood(t_first - 2000.0, 600, 600)  # heavy to decode, stamped long before the log
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-fair")
    with running_node(site_path) as node:
        wait_online(ops, node)
        flooder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder", protocol=mqtt.MQTTv5)
        flooder.connect("127.0.0.1", broker.port)
        flooder.loop_start()

        def flood_all() -> None:
            for payload in flood:
                info = flooder.publish(f"{PREFIX}/raw/radar/radar-n1", payload, qos=1)
            info.wait_for_publish(60)

        thread = threading.Thread(target=flood_all, daemon=True)
        thread.start()
        publish_log(load_site(site_path), log, speed=20.0)  # ≈ 9 s, during the flood
        thread.join(90)
        flooder.disconnect()
        flooder.loop_stop()

        def settled() -> bool:
            c = (ops.of(f"{PREFIX}/status/edge-1") or [{}])[-1].get("counters", {})
            return c.get("received", 0) + c.get("shed", 0) >= len(flood) + len(list(read_log(log))) \
                and c.get("queued", 1) == 0
        ops.wait_for(settled, 60)
        code, err = stop_node(node)
    assert code == 0, err
    final = ops.of(f"{PREFIX}/status/edge-1")[-1]
    shed = final["shed_by_sensor"]
    print(f"\nshed by sensor {shed}, counters {final['counters']}")
    assert shed.get("radar-n1", 0) > 0, "the flood outran processing"
    others = sum(n for sensor, n in shed.items() if sensor != "radar-n1")
    assert others <= 0.02 * good_total, (others, good_total, shed)
    ops.close()
