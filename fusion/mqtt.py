"""Everything that touches the broker: the live loop, record, and re-publish.

The only module that imports paho-mqtt (2.x, ``CallbackAPIVersion.VERSION2``, MQTT v5).
paho's network thread only appends to bounded queues (input messages, PUBACKs) and
sets a flag on (re)connect; decoding, processing, SQLite and every reaction to a
connect happen in the main thread through the same :class:`~fusion.pipeline.Pipeline`
as replay.  The input queue is bounded (``[mqtt] queue_size`` messages,
``queue_bytes`` of payload, ``max_input_age_s`` of waiting); what does not fit is shed
fairly per sensor and counted as ``shed`` in the status (memory stays bounded, the
network thread never blocks); raw input is acknowledged to the broker only once a
checkpoint holds it (:mod:`fusion.live.inbox`, :mod:`fusion.live.durable`).
The node holds two connections: the urgent one (raw input, alerts, status) and a
bulk one for track snapshots and rejections, so that an alert never waits behind a
large snapshot in the same TCP stream.  What waits for the bulk connection is bounded
too (``queue_size`` rejections, :data:`_MAX_UNSENT_SNAPSHOTS` snapshots); beyond that
outputs are dropped and counted as ``shed_outputs``.

An exception that ends the loop marks the node ``offline`` (retained, as the last
will would) before the clean disconnect, which cancels the will, and is re-raised.

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
import math
import os
import queue
import signal
import socket
import stat
import sqlite3
import threading
import time
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from fusion.config import ConfigError, Site
from fusion.logio import LogWriter, read_log
from fusion.pipeline import Outputs, Pipeline
from fusion.render import warm_up_kernels

__all__ = ["run_live", "record", "publish_log", "Outbox", "connect"]

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_STATUS_EVERY_S = 5.0
_TICK_MARGIN_S = 0.05  # a message stamped before a tick is in the queue by then: live releases as replay does
_MAX_DEFERRED_SNAPSHOTS = 5
#: track snapshots handed to paho but not yet written to the socket (a stalled bulk link); more are shed
_MAX_UNSENT_SNAPSHOTS = 8


class Outbox:
    """Alerts not yet acknowledged by the broker, on disk (SQLite, WAL).

    An acknowledged row is kept ``keep_acked_s`` more seconds (``[mqtt] resend_window_s``)
    and sent again after a reconnect: the broker may acknowledge before it saves
    (Mosquitto saves every ``autosave_interval`` s), and a broker killed before its
    next save has forgotten it.  Rows acknowledged longer ago are deleted by
    :meth:`forget`, which the live loop calls only while connected, so that the rows
    acknowledged just before a connection was lost are still there when it is back.

    A commit is a write into the WAL file without a disk sync (``synchronous=NORMAL``):
    it survives the process being killed (the data is in the kernel's page cache the
    moment ``add`` returns), and a background thread checkpoints the WAL into the
    database, with its disk syncs, once a second.  Syncing in the loop instead cost
    0.3 ms per commit on an idle disk but up to 0.7 s on a busy one, which held every
    alert behind it (measured with ``benchmarks/live_latency.py``).  A power cut can
    lose the commits of the last second; a crash or restart of the process loses none.
    """

    CHECKPOINT_EVERY_S = 1.0

    def __init__(self, path: Path, keep_acked_s: float = 0.0) -> None:
        self.keep_acked_s = keep_acked_s
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _make_private(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # no checkpoint (and its syncs) inside a commit
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, topic TEXT, payload BLOB, "
                         "acked_at REAL)")  # acked_at: wall time of the broker's acknowledgement, NULL before
        if "acked_at" not in {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}:
            self._db.execute("ALTER TABLE outbox ADD COLUMN acked_at REAL")  # an outbox of an earlier version
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

    def done(self, rows: list[int], now: float) -> None:
        """Rows acknowledged by the broker at wall time ``now``: kept ``keep_acked_s``, then forgotten."""
        with self._lock:
            self._db.execute("BEGIN")
            if self.keep_acked_s:
                self._db.executemany("UPDATE outbox SET acked_at = ? WHERE id = ?", [(now, r) for r in rows])
            else:
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(r,) for r in rows])
            self._db.execute("COMMIT")

    def forget(self, now: float) -> None:
        """Delete the rows acknowledged more than ``keep_acked_s`` before ``now``."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE acked_at < ?", (now - self.keep_acked_s,))

    def __len__(self) -> int:
        """Rows not yet acknowledged."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]

    def pending(self) -> list[tuple[int, str, bytes]]:
        """Every row, acknowledged (and kept) or not, oldest first: what to send after a (re)connect."""
        with self._lock:
            return list(self._db.execute("SELECT id, topic, payload FROM outbox ORDER BY id"))

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join()
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def _make_private(path: Path) -> None:
    """Create ``path`` readable by its owner only (0600), or make an existing one so.

    The outbox holds every alert not yet delivered.  SQLite creates the ``-wal`` and
    ``-shm`` files with the database file's mode, so they follow; those left by an older
    outbox are tightened too.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
            file.chmod(0o600)


class _Inbox(queue.Queue):
    """The bounded hand-over from paho's network thread: (t_rx, topic, payload) items.

    Bounded both in items (``maxsize``) and in payload bytes (``max_bytes``): 1,500
    payloads of 1 MB fit a bound of 20,000 items and held ~1 GB.  ``on_message`` never
    blocks: a message that does not fit is dropped and counted in ``dropped``.
    ``queued_bytes`` changes only under the queue's mutex (in ``_put``/``_get``); it is
    read without it in ``on_message``, which is safe because that is the only producer:
    between the check and the put the main thread can only make room.
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        super().__init__(maxsize)
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.dropped = 0

    def _put(self, item: tuple[float, str, bytes]) -> None:
        self.queued_bytes += len(item[2])
        super()._put(item)

    def _get(self) -> tuple[float, str, bytes]:
        item = super()._get()
        self.queued_bytes -= len(item[2])
        return item

    def on_message(self, client, userdata, message) -> None:
        payload = message.payload
        if self.queued_bytes + len(payload) > self.max_bytes:
            self.dropped += 1
            return
        try:
            self.put_nowait((time.time(), message.topic, payload))
        except queue.Full:
            self.dropped += 1


def _no_delay(client, userdata, sock) -> None:
    """Alerts are small and urgent: no Nagle delay (with delayed ACKs it costs ~40 ms a hop)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a websocket wrapper)
        pass


def connect(site: Site, client_id: str, *, will: tuple[str, bytes] | None = None, persistent: bool = False,
            max_queued: int = 0, on_connect=None, on_message=None, on_publish=None,
            on_subscribe=None, manual_ack: bool = False) -> mqtt.Client:
    """A connected paho client (network loop running) for the site's broker settings.

    The callbacks are installed before connecting: a persistent session delivers its
    queued messages right after the CONNACK, before the caller could set them.
    ``max_queued`` bounds paho's queue of QoS 1 messages not yet acknowledged (0: no
    bound); a publish beyond it returns ``MQTT_ERR_QUEUE_SIZE`` and is not sent.
    ``on_connect(client)`` runs on paho's network thread at every (re)connect.
    """
    cfg = site.config.mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_socket_open = _no_delay
    client.manual_ack_set(manual_ack)  # before connecting: a persistent session delivers right after the CONNACK
    client.max_queued_messages_set(max_queued)  # paho cannot change it once connected
    # paho's default of 20 unacknowledged QoS 1 messages would make a burst of alerts wait
    # for round trips; the broker's receive maximum (max_inflight_messages) still applies
    client.max_inflight_messages_set(1000)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    if cfg.username:
        client.username_pw_set(cfg.username, _read_password(site) if cfg.password_file else None)
    if cfg.tls_ca or cfg.tls_cert:
        _set_tls(client, site)
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
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=not persistent,
                       properties=properties)
    except OSError as error:  # refused, unreachable, unknown host, TLS handshake
        raise OSError(f"could not connect to the MQTT broker at {cfg.host}:{cfg.port}: "
                      f"{error.strerror or error}; check that the broker is running and listening there, "
                      f"and [mqtt] host and port in {site.path}") from None
    client.loop_start()
    if not connected.wait(15) or refused:
        client.loop_stop()
        why = f"refused: {refused[0]}" if refused else "no answer within 15 s"
        raise OSError(f"could not connect to the MQTT broker at {cfg.host}:{cfg.port} ({why})")
    return client


def _security_file(site: Site, field: str) -> Path:
    """The file named by ``[mqtt] <field>``, resolved; :class:`ConfigError` if it cannot be read."""
    path = site.resolve(getattr(site.config.mqtt, field))
    if not os.access(path, os.R_OK):
        why = "no such file" if not path.exists() else "not readable by this user"
        raise ConfigError(f"{site.path}: mqtt.{field}: cannot read {path} ({why})")
    return path


def _read_password(site: Site) -> str:
    """The password from ``[mqtt] password_file``, which only its owner may read (like ssh's keys)."""
    path = _security_file(site, "password_file")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{site.path}: mqtt.password_file: {path} may be read by other users "
                          f"(mode {mode:04o}); run: chmod 600 {path}")
    return path.read_text(encoding="utf-8").strip()


def _set_tls(client: mqtt.Client, site: Site) -> None:
    """TLS, verifying the broker against ``tls_ca`` or, without it, the system's CA store."""
    cfg = site.config.mqtt
    files = {field: str(_security_file(site, field)) for field in ("tls_ca", "tls_cert", "tls_key")
             if getattr(cfg, field)}
    try:
        client.tls_set(ca_certs=files.get("tls_ca"), certfile=files.get("tls_cert"), keyfile=files.get("tls_key"))
    except (OSError, ValueError) as error:  # ssl.SSLError: not a certificate, key does not match
        fields = ", ".join(f"mqtt.{field}" for field in files)
        raise ConfigError(f"{site.path}: {fields}: cannot load for TLS: {error}") from None


def _written(info: mqtt.MQTTMessageInfo) -> bool:
    """paho no longer holds this message: written (QoS 0), acknowledged (QoS 1), or dropped."""
    try:
        return info.is_published()
    except (ValueError, RuntimeError):  # never queued, or lost with the connection
        return True


class _Live:
    """The live node: queues ← paho thread; main thread → pipeline → publish.

    The network thread touches nothing but ``inbox`` (messages), ``_acks`` (PUBACKs
    with their reason codes) and ``_connected`` (a flag); everything else, including
    every read and write of ``in_flight`` and the outbox, is the main thread's.  So a
    PUBACK that arrives before ``publish`` has returned its mid is still matched with
    its reason code, and nothing the network thread runs can raise.
    """

    def __init__(self, site: Site, sinks: tuple = ()) -> None:
        self.site = site
        #: the node's other outputs (the map server, the TAK feed): they take snapshots, alerts,
        #: statuses and acks without blocking (see :mod:`fusion.web.sinks`)
        self.sinks = list(sinks)
        self.urgent: mqtt.Client | None = None  # the urgent connection, once connected
        self.bulk: mqtt.Client | None = None  # the bulk connection, once connected
        cfg = site.config.mqtt
        self.prefix = cfg.prefix
        from fusion.live.durable import Durable  # fusion.live builds on this module
        from fusion.live.inbox import AckedInbox

        self.inbox = AckedInbox(cfg.queue_size, cfg.queue_bytes, cfg.max_input_age_s)  # drops: status "shed"
        self.outbox = Outbox(site.resolve(cfg.outbox) / f"{site.node_id}.sqlite", cfg.resend_window_s)
        self._forgotten_at = 0.0  # monotonic time the outbox last dropped rows acknowledged long ago
        self.in_flight: dict[int, int] = {}  # mid → outbox row of each alert published, not yet acknowledged
        self._acks: collections.deque[tuple[int, mqtt.ReasonCode]] = collections.deque()  # (mid, reason) ← paho
        self._connected = threading.Event()  # set by paho on every (re)connect
        self.snapshots: collections.deque = collections.deque()  # rendered when the input queue is empty
        self._unsent_snapshots: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        self.shed_outputs = 0  # snapshots and rejections dropped because the bulk connection could not take them
        self.pipeline = Pipeline(site)
        self.durable = Durable(site, self.pipeline, self.inbox)  # input acknowledged once checkpointed
        self.stop = threading.Event()
        self.status_topic = f"{self.prefix}/status/{site.node_id}"

    # paho thread: append or set, nothing else --------------------------------------------
    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.append((mid, reason_code))

    def on_connect(self, client: mqtt.Client) -> None:
        self.inbox.on_connect()
        self._connected.set()

    def on_ack_message(self, client, userdata, message) -> None:
        """An operator's ack (``PREFIX/acks/{agency_id}``) from any node: checked, handed to the sinks."""
        from fusion.web.acks import AckError, decode_ack

        try:
            ack = decode_ack(message.payload)
            if message.topic.rsplit("/", 1)[-1] != ack.agency_id:
                raise AckError(f"ack: agency_id {ack.agency_id!r} does not match the topic {message.topic}")
        except AckError as error:
            log.warning("ignored an ack on %s: %s", message.topic, error)
            return
        for sink in self.sinks:
            sink.on_ack(ack)

    def publish_release(self, topic: str, payload: bytes, qos: int) -> None:
        """A release for a partner (:mod:`fusion.federation`), as the node's own: alerts (QoS 1) through
        the outbox on the urgent connection (kept until the broker acknowledges them, re-sent with the
        same ids after a crash), released tracks (QoS 0) on the bulk one."""
        if qos:
            (row,) = self.outbox.add([(topic, payload)])
            if self.urgent is not None:  # else the outbox sends it on connecting
                self._send_alert(self.urgent, row, topic, payload)
        elif self.bulk is not None:
            self.bulk.publish(topic, payload, qos=0)

    def publish_ack(self, ack) -> None:
        """An ack made on this node's map: QoS 1 on ``PREFIX/acks/{agency_id}`` (paho's publish is thread-safe)."""
        if self.urgent is not None:
            self.urgent.publish(f"{self.prefix}/acks/{ack.agency_id}", _encode(ack.to_dict()), qos=1)

    # main thread --------------------------------------------------------------------
    def _after_connect(self, client: mqtt.Client) -> None:
        """Subscribe, announce, and re-send what the outbox holds that is not in flight.

        Rows in flight are re-sent by paho itself on the new connection (same mid); the
        others were refused by the broker, left by an earlier run of this node, or
        acknowledged within ``resend_window_s`` before the connection was lost (a broker
        restarted from its last save may have lost them; consumers deduplicate on ``alert_id``).
        """
        client.subscribe(f"{self.prefix}/raw/+/+", qos=1)
        if self.pipeline.federation is not None:  # partners' released tracks: input like the sensors'
            from fusion.federation.ingress import partner_topic_filter

            client.subscribe(partner_topic_filter(self.prefix), qos=1)
        if self.sinks:
            client.message_callback_add(f"{self.prefix}/acks/+", self.on_ack_message)
            client.subscribe(f"{self.prefix}/acks/+", qos=1)
        client.publish(self.status_topic, _encode(self._status()), qos=1, retain=True)
        self.forget_acknowledged()
        flying = set(self.in_flight.values())
        for row, topic, payload in self.outbox.pending():
            if row not in flying:
                self._send_alert(client, row, topic, payload)

    def _send_alert(self, client: mqtt.Client, row: int, topic: str, payload: bytes) -> None:
        # its PUBACK may be reported before publish returns: forget_acknowledged matches it later
        self.in_flight[client.publish(topic, payload, qos=1).mid] = row

    def forget_acknowledged(self) -> None:
        """Match the PUBACKs reported so far with the alerts in flight; delete the accepted rows.

        A PUBACK with an error reason (e.g. the broker's ACL refused the topic) keeps its
        row, to be sent again on the next connection.  A PUBACK of a mid not in flight is
        the status message's.  (paho reuses a mid only after 65,535 more publishes, and
        this runs after every message, so a stale PUBACK never meets a reused mid.)
        """
        accepted = []
        while self._acks:
            mid, reason_code = self._acks.popleft()
            row = self.in_flight.pop(mid, None)
            if row is None:
                continue
            if reason_code.is_failure:
                log.error("broker refused alert (outbox row %d): %s; kept for the next connection", row, reason_code)
            else:
                accepted.append(row)
        if accepted:
            self.outbox.done(accepted, time.time())
        if self.outbox.keep_acked_s and time.monotonic() - self._forgotten_at >= 1.0 \
                and self.urgent is not None and self.urgent.is_connected():
            self._forgotten_at = time.monotonic()
            self.outbox.forget(time.time())

    def _publish_bulk(self, bulk: mqtt.Client, topic: str, payload: bytes, qos: int) -> mqtt.MQTTMessageInfo | None:
        info = bulk.publish(topic, payload, qos=qos)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE or (qos == 0 and info.rc != mqtt.MQTT_ERR_SUCCESS):
            self.shed_outputs += 1  # paho's queue is full, or (QoS 0) no connection to write to
            return None
        return info

    def _publish_snapshot(self, bulk: mqtt.Client, payload: bytes) -> bool:
        """A QoS 0 snapshot waits in paho until the socket takes it: hold at most a few.  Whether it
        was handed to paho (False: shed)."""
        while self._unsent_snapshots and _written(self._unsent_snapshots[0]):
            self._unsent_snapshots.popleft()
        if len(self._unsent_snapshots) >= _MAX_UNSENT_SNAPSHOTS:
            self.shed_outputs += 1
            return False
        info = self._publish_bulk(bulk, f"{self.prefix}/tracks", payload, qos=0)
        if info is not None:
            self._unsent_snapshots.append(info)
        return info is not None

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
            for sink in self.sinks:
                sink.on_alerts([alert.to_dict() for alert in out.alerts])
        for rejection in out.rejected:
            self._publish_bulk(bulk, f"{self.prefix}/rejected", _encode(rejection.to_dict()), qos=1)
        self.snapshots.extend(out.snapshots)
        # track snapshots wait while input is queued (they cost ~10 ms per 1,000 tracks), but not forever
        while self.snapshots and (self.inbox.empty() or len(self.snapshots) > _MAX_DEFERRED_SNAPSHOTS):
            payload = self.snapshots.popleft().to_json()
            published = self._publish_snapshot(bulk, payload)
            if self.sinks:  # the same JSON; decoded to a dict only for a sink that needs one
                from fusion.web.sinks import hand_snapshot

                hand_snapshot(self.sinks, payload, published)

    def _status(self, state: str = "online") -> dict:
        status = self.pipeline.status(time.time())
        status["state"] = state
        status["counters"]["shed"] = self.inbox.dropped + self.inbox.aged
        status["counters"]["shed_aged"] = self.inbox.aged  # of those, shed for waiting > max_input_age_s
        status["counters"]["shed_outputs"] = self.shed_outputs
        status["counters"]["queued"] = self.inbox.qsize()
        status["counters"]["queued_bytes"] = self.inbox.queued_bytes
        fair = self.inbox.fair  # the input rate admitted under overload (bytes/s), and the heaviest sensors' share
        status["input_budget_Bps"] = round(fair.budget_Bps)
        status["input_fair_share_Bps"] = round(fair.fair_Bps) if math.isfinite(fair.fair_Bps) else None
        status["input_wait_max_s"] = round(self.inbox.longest_wait_s, 3)  # the longest wait since the last status
        self.inbox.longest_wait_s = 0.0
        status["counters"]["outbox"] = len(self.outbox)  # decided, not yet acknowledged
        status["shed_by_sensor"] = self.inbox.shed_counts()
        status["counters"]["retained_ignored"] = self.inbox.retained
        status["counters"]["input_unacknowledged"] = self.inbox.unacknowledged  # until the next checkpoint
        status["counters"]["checkpoints"] = self.durable.written
        status["counters"]["checkpoints_failed"] = self.durable.failed
        for sink in self.sinks:
            sink.on_status(status)
        return status

    def _mark_crashed(self, client: mqtt.Client, error: BaseException) -> None:
        """Publish ``offline`` (retained, QoS 1, as the will) for a loop ended by ``error``.

        The disconnect that follows is a clean one, and a clean disconnect discards the
        will: without this the broker would show the dead node ``online``.
        """
        try:
            status = self._status("offline")
        except Exception:  # the failure may be in what the status reads
            status = {"node_id": self.site.node_id, "state": "offline"}
        status["error"] = f"{type(error).__name__}: {error}"[:300]
        log.critical("the live loop failed (%s); marked %s offline", status["error"], self.status_topic)
        try:
            final = client.publish(self.status_topic, _encode(status), qos=1, retain=True)
            if client.is_connected():
                final.wait_for_publish(5)
        except Exception as publish_error:  # the original error is the one to report
            log.error("could not publish the offline status: %s", publish_error)

    def _loop(self, client: mqtt.Client, bulk: mqtt.Client) -> None:
        last_status = time.monotonic()
        reported = (0, 0)  # (input shed, outputs shed) already logged
        taken: tuple[float, int, float] | None = None  # (perf_counter s, payload bytes, s waited) of the last taken
        while not self.stop.is_set():
            if taken is not None:  # all the loop spent since it was taken (checkpoints and status included)
                self.inbox.served(time.perf_counter() - taken[0], taken[1], taken[2])
                taken = None
            if self._connected.is_set():
                self._connected.clear()
                self._after_connect(client)
            due = self.pipeline.next_release() + _TICK_MARGIN_S  # when held scans fall due without input
            started, ready = time.perf_counter(), not self.inbox.empty()  # ready: taking it is work, not idling
            try:
                t_rx, topic, payload = self.inbox.get(timeout=min(0.2, max(0.001, due - time.time())))
            except queue.Empty:
                if time.time() >= due:
                    self.publish(client, bulk, self.pipeline.tick(time.time() - _TICK_MARGIN_S))
            else:
                taken = (started if ready else time.perf_counter(), len(payload), time.time() - t_rx)
                self.publish(client, bulk, self.pipeline.feed(t_rx, topic, payload))
            self.forget_acknowledged()
            self.durable.maybe_checkpoint(client)
            if time.monotonic() - last_status > _STATUS_EVERY_S:
                client.publish(self.status_topic, _encode(self._status()), qos=1, retain=True)
                last_status = time.monotonic()
                shed = (self.inbox.dropped + self.inbox.aged, self.shed_outputs)
                if shed[0] > reported[0]:
                    log.warning("shed %d input messages in the last %.0f s: input outran processing "
                                "(queue of %d messages / %d bytes full); %d shed in all", shed[0] - reported[0],
                                _STATUS_EVERY_S, self.inbox.maxsize, self.inbox.max_bytes, shed[0])
                if shed[1] > reported[1]:
                    log.warning("shed %d track snapshots or rejections in the last %.0f s: the bulk connection "
                                "could not take them; %d shed in all", shed[1] - reported[1], _STATUS_EVERY_S,
                                shed[1])
                reported = shed

    def _finish(self, client: mqtt.Client, bulk: mqtt.Client) -> None:
        """Stopped: process what arrived, wait (≤ 10 s) for the alerts' PUBACKs, mark offline."""
        while not self.inbox.empty():
            t_rx, topic, payload = self.inbox.get_nowait()
            self.publish(client, bulk, self.pipeline.feed(t_rx, topic, payload))
        self.publish(client, bulk, self.pipeline.flush())
        self.durable.maybe_checkpoint(client, force=True)
        deadline = time.monotonic() + 10
        self.forget_acknowledged()
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
            self.forget_acknowledged()
        final = client.publish(self.status_topic, _encode(self._status("offline")), qos=1, retain=True)
        if client.is_connected():
            final.wait_for_publish(5)

    def run(self) -> int:
        warm_seconds = warm_up_kernels()
        log.info("kernels ready in %.2f s", warm_seconds)
        self.durable.restore()
        # everything loaded so far (numba, scipy, shapely, the site) lives for the whole run:
        # keep it out of the cyclic collector, whose full passes over it stalled the loop ~100 ms
        gc.collect()
        gc.freeze()
        will = (self.status_topic, _encode({"node_id": self.site.node_id, "state": "offline"}))
        clients: list[mqtt.Client] = []
        try:
            # rejections beyond queue_size waiting for their PUBACK are shed (counted in shed_outputs)
            bulk = connect(self.site, f"borderfusion-{self.site.node_id}-bulk",
                           max_queued=self.site.config.mqtt.queue_size)
            clients.append(bulk)
            self.bulk = bulk
            client = connect(self.site, f"borderfusion-{self.site.node_id}", will=will, persistent=True,
                             on_connect=self.on_connect, on_message=self.inbox.on_message,
                             on_publish=self.on_publish, manual_ack=True)
            clients.append(client)
            self.urgent = client
            try:
                self._loop(client, bulk)
                self._finish(client, bulk)
            except BaseException as error:
                self._mark_crashed(client, error)
                raise
        finally:
            for c in clients:
                c.disconnect()
                c.loop_stop()
            self.outbox.close()
            for sink in self.sinks:
                sink.close()
        return 0


def run_live(site: Site) -> int:
    """``borderfusion run``: until SIGINT/SIGTERM; then drain, publish, mark offline, exit 0."""
    from fusion.web.sinks import node_sinks

    live = _Live(site)
    from fusion.federation.gateway import federation_sinks

    live.sinks = node_sinks(site, publish_ack=live.publish_ack) + federation_sinks(site, live.publish_release)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: live.stop.set())
    return live.run()


def record(site: Site, out: str | Path, duration_s: float | None = None, on_ready=None) -> int:
    """``borderfusion record``: the raw topics into a log until Ctrl-C/SIGTERM or ``duration_s``.

    ``on_ready(topic)`` is called once the subscription is acknowledged.
    """
    inbox = _Inbox(site.config.mqtt.queue_size, site.config.mqtt.queue_bytes)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    prefix = site.config.mqtt.prefix
    subscribed = threading.Event()
    topics = [(f"{prefix}/raw/+/+", 1)]
    if site.config.federation.fusion is not None:  # partners' released tracks are input too: replay needs them
        from fusion.federation.ingress import partner_topic_filter

        topics.append((partner_topic_filter(prefix), 1))
    client = connect(site, f"borderfusion-record-{site.node_id}", on_message=inbox.on_message,
                     on_connect=lambda c: c.subscribe(topics),
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
    """``replay --publish``: re-publish a log's messages at ``speed`` × real time (None: as fast as possible).

    As a sensor gateway should: what the broker acknowledged within ``[mqtt] resend_window_s``
    before a lost connection is sent again once it is back (:mod:`fusion.live.resend`).
    """
    from fusion.live.resend import RecentlySent  # fusion.live builds on this module

    recent = RecentlySent(site.config.mqtt.resend_window_s)
    client = connect(site, f"borderfusion-replay-{time.monotonic_ns()}", on_connect=recent.on_connect)
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
            for topic, payload in recent.to_resend(client):
                client.publish(topic, payload, qos=1)
            last = client.publish(record_.topic, record_.payload, qos=1)
            recent.sent(record_.topic, record_.payload, client.is_connected())
            count += 1
            if count % 1000 == 0:
                last.wait_for_publish(30)  # keep paho's queue short
        if last is not None:
            last.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    if recent.resent:
        log.info("publish: %d messages sent again after reconnects", recent.resent)
    return count
