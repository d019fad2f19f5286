"""Everything that touches the broker: the live loop, record, and re-publish.

The only module that imports paho-mqtt (2.x, ``CallbackAPIVersion.VERSION2``, MQTT v5).
paho's network thread only appends to a bounded queue; decoding and processing
happen in the main thread through the same :class:`~fusion.pipeline.Pipeline` as
replay.  When the queue is full the newest message is dropped and counted as
``shed`` in the status (memory stays bounded, the network thread never blocks).
The node holds two connections: the urgent one (raw input, alerts, status) and a
bulk one for track snapshots and rejections, so that an alert never waits behind a
large snapshot in the same TCP stream.

Alerts go through :class:`Outbox`, an SQLite file beside the site config: a row is
written before the alert is published (QoS 1) and deleted when the broker
acknowledges it, so alerts decided but not acknowledged survive link drops, broker
restarts and a restart of this process; they are re-sent with the same
``alert_id`` (consumers deduplicate on it).  The pipeline's session is persistent
(``clean_start`` false, a session expiry interval), so the broker keeps its
subscription and queued raw messages while it is away.
"""

from __future__ import annotations

import collections
import gc
import logging
import queue
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from fusion.config import Site
from fusion.logio import LogWriter, read_log
from fusion.pipeline import Outputs, Pipeline
from tracking.warmup import warm_up

__all__ = ["run_live", "record", "publish_log", "Outbox", "connect"]

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_STATUS_EVERY_S = 5.0
_TICK_MARGIN_S = 0.05  # a message stamped before a tick is in the queue by then: live releases as replay does
_MAX_DEFERRED_SNAPSHOTS = 5


class Outbox:
    """Alerts not yet acknowledged by the broker, on disk (SQLite, WAL).

    A commit is a write into the WAL file without a disk sync (``synchronous=NORMAL``):
    it survives the process being killed (the data is in the kernel's page cache the
    moment ``add`` returns), and a background thread checkpoints the WAL into the
    database, with its disk syncs, once a second.  Syncing in the loop instead cost
    0.3 ms per commit on an idle disk but up to 0.7 s on a busy one, which held every
    alert behind it (measured with ``benchmarks/live_latency.py``).  A power cut can
    lose the commits of the last second; a crash or restart of the process loses none.
    """

    CHECKPOINT_EVERY_S = 1.0

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # no checkpoint (and its syncs) inside a commit
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, topic TEXT, payload BLOB)")
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(path,), daemon=True,
                                              name="outbox-checkpoint")
        self._checkpointer.start()

    def _checkpoint_loop(self, path: Path) -> None:
        db = sqlite3.connect(path, isolation_level=None)  # its own connection: sqlite releases the GIL
        try:
            while not self._closed.wait(self.CHECKPOINT_EVERY_S):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks the writer
        finally:
            db.close()

    def add(self, messages: list[tuple[str, bytes]]) -> list[int]:
        """Store messages in one transaction; their row ids."""
        with self._lock:
            self._db.execute("BEGIN")
            rows = [self._db.execute("INSERT INTO outbox (topic, payload) VALUES (?, ?)", m).lastrowid
                    for m in messages]
            self._db.execute("COMMIT")
            return rows

    def done(self, rows: list[int]) -> None:
        """Forget acknowledged rows, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(r,) for r in rows])
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def pending(self) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return list(self._db.execute("SELECT id, topic, payload FROM outbox ORDER BY id"))

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join()
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


class _Inbox(queue.Queue):
    """The bounded hand-over from paho's network thread: (t_rx, topic, payload) items.

    ``on_message`` never blocks: when the queue is full the message is dropped and counted.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.dropped = 0

    def on_message(self, client, userdata, message) -> None:
        try:
            self.put_nowait((time.time(), message.topic, message.payload))
        except queue.Full:
            self.dropped += 1


def _no_delay(client, userdata, sock) -> None:
    """Alerts are small and urgent: no Nagle delay (with delayed ACKs it costs ~40 ms a hop)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a websocket wrapper)
        pass


def connect(site: Site, client_id: str, *, will: tuple[str, bytes] | None = None, persistent: bool = False,
            on_connect=None, on_message=None, on_publish=None, on_subscribe=None) -> mqtt.Client:
    """A connected paho client (network loop running) for the site's broker settings.

    The callbacks are installed before connecting: a persistent session delivers its
    queued messages right after the CONNACK, before the caller could set them.
    """
    cfg = site.config.mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_socket_open = _no_delay
    client.max_queued_messages_set(0)  # unlimited in paho: our outbox bounds what we keep
    # paho's default of 20 unacknowledged QoS 1 messages would make a burst of alerts wait
    # for round trips; the broker's receive maximum (max_inflight_messages) still applies
    client.max_inflight_messages_set(1000)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    if cfg.username:
        password = site.resolve(cfg.password_file).read_text().strip() if cfg.password_file else None
        client.username_pw_set(cfg.username, password)
    if cfg.tls_ca:
        client.tls_set(ca_certs=str(site.resolve(cfg.tls_ca)),
                       certfile=str(site.resolve(cfg.tls_cert)) if cfg.tls_cert else None,
                       keyfile=str(site.resolve(cfg.tls_key)) if cfg.tls_key else None)
    if will:
        client.will_set(will[0], will[1], qos=1, retain=True)
    properties = Properties(PacketTypes.CONNECT)
    if persistent:
        properties.SessionExpiryInterval = cfg.session_expiry_s
    connected = threading.Event()
    refused: list[str] = []

    def _on_connect(c, userdata, flags, reason_code, props):
        if reason_code.is_failure:
            log.error("broker %s:%s refused the connection: %s", cfg.host, cfg.port, reason_code)
            if not connected.is_set():  # at start-up: give up at once (bad credentials do not heal)
                refused.append(str(reason_code))
                connected.set()
            return
        log.info("connected to %s:%s (session present: %s)", cfg.host, cfg.port, flags.session_present)
        if on_connect:
            on_connect(c)
        connected.set()

    client.on_connect = _on_connect
    client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=not persistent, properties=properties)
    client.loop_start()
    if not connected.wait(15) or refused:
        client.loop_stop()
        why = f"refused: {refused[0]}" if refused else "no answer within 15 s"
        raise OSError(f"could not connect to the MQTT broker at {cfg.host}:{cfg.port} ({why})")
    return client


class _Live:
    """The live node: queue ← paho thread; main thread → pipeline → publish."""

    def __init__(self, site: Site) -> None:
        self.site = site
        cfg = site.config.mqtt
        self.prefix = cfg.prefix
        self.inbox = _Inbox(cfg.queue_size)  # what it drops is the status's "shed"
        self.outbox = Outbox(site.resolve(cfg.outbox) / f"{site.node_id}.sqlite")
        self.in_flight: dict[int, int] = {}
        self.acked: collections.deque[int] = collections.deque()  # acknowledged rows, not yet deleted
        self.snapshots: collections.deque = collections.deque()  # rendered when the input queue is empty
        self._lock = threading.Lock()
        self.pipeline = Pipeline(site)
        self.stop = threading.Event()
        self.status_topic = f"{self.prefix}/status/{site.node_id}"

    # paho thread --------------------------------------------------------------------
    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            row = self.in_flight.pop(mid, None)
        if row is None:  # not an alert, or acknowledged before _send_alert recorded it (it checks)
            return
        if reason_code.is_failure:  # e.g. the broker's ACL refused it: keep it, retry on the next connect
            log.error("broker refused alert (outbox row %d): %s; kept for the next connection", row, reason_code)
        else:
            self.acked.append(row)  # deleted by the main thread in batches: no disk I/O on paho's thread

    def on_connect(self, client: mqtt.Client) -> None:
        client.subscribe(f"{self.prefix}/raw/+/+", qos=1)
        client.publish(self.status_topic, _encode(self._status()), qos=1, retain=True)
        with self._lock:
            flying = set(self.in_flight.values())
        for row, topic, payload in self.outbox.pending():
            if row not in flying:
                self._send_alert(client, row, topic, payload)

    # main thread --------------------------------------------------------------------
    def _send_alert(self, client: mqtt.Client, row: int, topic: str, payload: bytes) -> None:
        # never call into paho while holding our lock: paho calls on_publish holding its own
        info = client.publish(topic, payload, qos=1)
        with self._lock:
            self.in_flight[info.mid] = row
        if info.is_published():  # the PUBACK beat us to it: on_publish found no row
            with self._lock:
                row_ = self.in_flight.pop(info.mid, None)
            if row_ is not None:
                self.acked.append(row_)

    def forget_acknowledged(self) -> None:
        rows = []
        while self.acked:
            rows.append(self.acked.popleft())
        if rows:
            self.outbox.done(rows)

    def publish(self, client: mqtt.Client, bulk: mqtt.Client, out: Outputs) -> None:
        """Alerts on ``client``; track snapshots and rejections on ``bulk``, a connection of their own.

        One TCP connection delivers in order: an alert written after a 1 MB snapshot waits
        for all of it (seconds on a radio link).  Even on loopback, Linux holds a write
        larger than the receiver's window until its persist timer fires: alerts queued
        behind a 125 KB snapshot of 1,000 tracks arrived 2.7 s late in about half of the
        runs of ``benchmarks/live_latency.py`` before the two were split.
        """
        copies = [(f"{self.prefix}/alerts/{agency}", payload) for alert in out.alerts
                  for payload in (_encode(alert.to_dict()),) for agency in alert.recipients]
        if copies:
            for row, (topic, payload) in zip(self.outbox.add(copies), copies):
                self._send_alert(client, row, topic, payload)
        for rejection in out.rejected:
            bulk.publish(f"{self.prefix}/rejected", _encode(rejection.to_dict()), qos=1)
        self.snapshots.extend(out.snapshots)
        # track snapshots wait while input is queued (they cost ~10 ms per 1,000 tracks), but not forever
        while self.snapshots and (self.inbox.empty() or len(self.snapshots) > _MAX_DEFERRED_SNAPSHOTS):
            bulk.publish(f"{self.prefix}/tracks", _encode(self.snapshots.popleft().to_dict()), qos=0)

    def _status(self, state: str = "online") -> dict:
        status = self.pipeline.status(time.time())
        status["state"] = state
        status["counters"]["shed"] = self.inbox.dropped
        status["counters"]["queued"] = self.inbox.qsize()
        status["counters"]["outbox"] = len(self.outbox) - len(self.acked)  # decided, not yet acknowledged
        return status

    def run(self) -> int:
        warm_seconds = warm_up()
        log.info("kernels ready in %.2f s", warm_seconds)
        # everything loaded so far (numba, scipy, shapely, the site) lives for the whole run:
        # keep it out of the cyclic collector, whose full passes over it stalled the loop ~100 ms
        gc.collect()
        gc.freeze()
        will = (self.status_topic, _encode({"node_id": self.site.node_id, "state": "offline"}))
        bulk = connect(self.site, f"borderfusion-{self.site.node_id}-bulk")
        client = connect(self.site, f"borderfusion-{self.site.node_id}", will=will, persistent=True,
                         on_connect=self.on_connect, on_message=self.inbox.on_message, on_publish=self.on_publish)
        last_status = time.monotonic()
        reported_shed = 0
        try:
            while not self.stop.is_set():
                due = self.pipeline.next_release() + _TICK_MARGIN_S  # when held scans fall due without input
                try:
                    t_rx, topic, payload = self.inbox.get(timeout=min(0.2, max(0.001, due - time.time())))
                except queue.Empty:
                    if time.time() >= due:
                        self.publish(client, bulk, self.pipeline.tick(time.time() - _TICK_MARGIN_S))
                else:
                    self.publish(client, bulk, self.pipeline.feed(t_rx, topic, payload))
                self.forget_acknowledged()
                if time.monotonic() - last_status > _STATUS_EVERY_S:
                    client.publish(self.status_topic, _encode(self._status()), qos=1, retain=True)
                    last_status = time.monotonic()
                    shed = self.inbox.dropped
                    if shed > reported_shed:
                        log.warning("shed %d input messages in the last %.0f s: input outran processing "
                                    "(queue of %d full); %d shed in all", shed - reported_shed,
                                    _STATUS_EVERY_S, self.inbox.maxsize, shed)
                        reported_shed = shed
            while not self.inbox.empty():  # drain what already arrived
                t_rx, topic, payload = self.inbox.get_nowait()
                self.publish(client, bulk, self.pipeline.feed(t_rx, topic, payload))
            self.publish(client, bulk, self.pipeline.flush())
            deadline = time.monotonic() + 10
            while self.in_flight and time.monotonic() < deadline:
                time.sleep(0.05)
            self.forget_acknowledged()
            final = client.publish(self.status_topic, _encode(self._status("offline")), qos=1, retain=True)
            if client.is_connected():
                final.wait_for_publish(5)
        finally:
            for c in (client, bulk):
                c.disconnect()
                c.loop_stop()
            self.outbox.close()
        return 0


def run_live(site: Site) -> int:
    """``borderfusion run``: until SIGINT/SIGTERM; then drain, publish, mark offline, exit 0."""
    live = _Live(site)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: live.stop.set())
    return live.run()


def record(site: Site, out: str | Path, duration_s: float | None = None, on_ready=None) -> int:
    """``borderfusion record``: the raw topics into a log until Ctrl-C/SIGTERM or ``duration_s``.

    ``on_ready(topic)`` is called once the subscription is acknowledged.
    """
    inbox = _Inbox(site.config.mqtt.queue_size)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    prefix = site.config.mqtt.prefix
    subscribed = threading.Event()
    client = connect(site, f"borderfusion-record-{site.node_id}", on_message=inbox.on_message,
                     on_connect=lambda c: c.subscribe(f"{prefix}/raw/+/+", qos=1),
                     on_subscribe=lambda *_: subscribed.set())
    if subscribed.wait(15) and on_ready:
        on_ready(f"{prefix}/raw/+/+")
    count = 0
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        with LogWriter(out, site.name) as writer:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                try:
                    writer.write(*inbox.get(timeout=0.2))
                    count += 1
                except queue.Empty:
                    continue
            while not inbox.empty():
                writer.write(*inbox.get_nowait())
                count += 1
    finally:
        client.disconnect()
        client.loop_stop()
    if inbox.dropped:
        log.warning("record: %d messages dropped because writing could not keep up (queue of %d)",
                    inbox.dropped, inbox.maxsize)
    return count


def publish_log(site: Site, log_path: str | Path, speed: float | None = None) -> int:
    """``replay --publish``: re-publish a log's messages at ``speed`` × real time (None: as fast as possible)."""
    client = connect(site, f"borderfusion-replay-{time.monotonic_ns()}")
    count = 0
    start_wall = time.monotonic()
    first_rx = None
    last = None
    try:
        for record_ in read_log(log_path):
            if speed is not None:
                first_rx = record_.t_rx if first_rx is None else first_rx
                wait = (record_.t_rx - first_rx) / speed - (time.monotonic() - start_wall)
                if wait > 0:
                    time.sleep(wait)
            last = client.publish(record_.topic, record_.payload, qos=1)
            count += 1
            if count % 1000 == 0:
                last.wait_for_publish(30)  # keep paho's queue short
        if last is not None:
            last.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    return count
