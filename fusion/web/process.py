"""The live node's map server in a process of its own: the node hands over bytes, never its GIL.

Why a process: with the server as a thread of the node, every 2,000-track snapshot cost
the node's interpreter ~10 ms of GIL (decode, compact, filter and encode per agency) on
top of the ~15 ms it took to decode the snapshot to a dict for it, and the node's alert
latency p99 rose 1.45–1.72 times with two viewers attached (``benchmarks/web_latency.py``).
In a child process the same work runs beside the node, not inside it.  Measured with
``benchmarks/web_latency.py --stall`` (a loop thread like the node's, an item due every
millisecond, a 2,000-track snapshot handed over each second, two readers on the feed;
medians of 3 runs): item latency p99 0.25 ms with no map, 5.4 ms with the map as a
thread (12 ms even when that thread decodes the JSON itself: sharing the interpreter is
the cost), 0.26 ms with the map in this process; the longest 4.5, 48 and 4.4 ms.

The node side (:class:`MapProcess`, a sink of :mod:`fusion.web.sinks`) keeps what it is
handed in bounded places — the newest snapshot (the JSON bytes the node already encoded
for MQTT, one slot), alerts and acks (bounded deques), the newest status — and a writer
thread sends them over a Unix socket pair: acks, alerts and the status first, then the
newest snapshot.  A hand-over is a lock, an append and a notify; the node's loop never
waits for the child, and a child that stops reading only makes the writer skip to newer
snapshots.  A reader thread takes the acks operators make in browsers and gives them to
``publish_ack`` (the node publishes them on ``PREFIX/acks/{agency_id}``); the child has
already stored them.  If the child dies, the node logs it and starts another (after
1, 2, 4 … ≤ 30 s), which gets the recent alerts and the newest status again.

The child (``python -m fusion.web.process FD``) runs the unchanged
:class:`~fusion.web.server.WebServer`; its process is named ``bf-web`` and runs at
:data:`MAP_NICE` (the browsers' frames wait for the node, never the other way round). It
is told what to serve by the first frame (the site, ``[web]``, acks path, listen
override, log level; pickled by its own parent), answers ``ready`` with its URL or
``failed`` with the start-up error (:class:`~fusion.config.ConfigError` or OSError,
re-raised by the node as it is), and ends when the socket closes (the node closed it, or
died).

Frames (both ways): a kind byte, the payload's length (4 bytes, big-endian), the payload.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import msgspec

from fusion.config import ConfigError, Site, WebConfig
from fusion.web.acks import Ack, AckError, decode_ack

__all__ = ["MapProcess", "MAP_NICE", "write_frame", "read_frame"]

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_HEADER = struct.Struct(">cI")
_PRODUCED = struct.Struct(">d")
# node → map
_SPEC, _SNAPSHOT, _ALERTS, _STATUS, _ACK = b"P", b"S", b"A", b"T", b"K"
# map → node (and _ACK: one an operator made)
_READY, _FAILED = b"R", b"E"
_MAX_PENDING = 10_000  # alert lists / acks handed over but not yet sent; beyond it the oldest are dropped
_START_TIMEOUT_S = 60.0
_MAX_RESTART_DELAY_S = 30.0
#: the map process's niceness above the node's: when both want the same core the node's loop runs
#: first (a nice-10 task gets ~1/10 the CPU share of a nice-0 one, and a waking node thread preempts
#: it), while a node that idles (most of the time) leaves the map all it needs
MAP_NICE = 10


def write_frame(sock: socket.socket, kind: bytes, *parts: bytes) -> None:
    """Send one frame whose payload is ``parts`` joined (one write each: a payload is never copied)."""
    sock.sendall(_HEADER.pack(kind, sum(len(part) for part in parts)))
    for part in parts:
        sock.sendall(part)


def read_frame(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """The next (kind, payload) from ``stream``; None at its end (the other side closed, or died: a
    process killed with data unread resets its socket)."""
    try:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        kind, length = _HEADER.unpack(header)
        payload = stream.read(length)
    except (ConnectionError, ValueError):  # ValueError: the stream was closed here
        return None
    return (kind, payload) if len(payload) == length else None


@dataclass
class _Pending:
    """What the node handed over and the writer has not sent yet, and what a restarted child is
    sent again (the recent alerts and the newest status); all under ``ready``'s lock."""

    recent_alerts: int
    ready: threading.Condition = field(default_factory=threading.Condition)
    snapshot: tuple[float, bytes] | None = None  # (wall time handed over, its JSON)
    alerts: collections.deque = field(default_factory=lambda: collections.deque(maxlen=_MAX_PENDING))
    acks: collections.deque = field(default_factory=lambda: collections.deque(maxlen=_MAX_PENDING))
    status: bytes | None = None
    dropped: int = 0  # alert lists and acks dropped because the writer could not send them in time
    recent: collections.deque = field(init=False)  # alert lists taken to be sent, newest last
    last_status: bytes | None = None
    resend: bool = False  # a new child: send it ``recent`` and ``last_status`` first

    def __post_init__(self) -> None:
        self.recent = collections.deque(maxlen=self.recent_alerts)

    def waiting(self) -> bool:
        return self.resend or self.snapshot is not None or self.status is not None or bool(self.alerts or self.acks)

    def take(self) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """Every frame waiting as (kind, payload parts), urgent ones first; empties the slots."""
        frames = []
        if self.resend:
            frames += [(_ALERTS, (a,)) for a in self.recent]
            frames += [(_STATUS, (self.last_status,))] if self.last_status is not None and self.status is None else []
            self.resend = False
        frames += [(_ACK, (a,)) for a in self.acks] + [(_ALERTS, (a,)) for a in self.alerts]
        frames += [(_STATUS, (self.status,))] if self.status is not None else []
        if self.snapshot is not None:
            frames.append((_SNAPSHOT, (_PRODUCED.pack(self.snapshot[0]), self.snapshot[1])))
        self.recent.extend(self.alerts)
        self.last_status = self.status or self.last_status
        self.acks.clear()
        self.alerts.clear()
        self.status = self.snapshot = None
        return frames


class MapProcess:
    """The map server of a live node, run in a child process; the ``on_*`` methods never block.

    Same hand-over as :class:`~fusion.web.server.WebServer` (``on_snapshot``, ``on_alerts``,
    ``on_status``, ``on_ack``), plus ``on_snapshot_json(payload)`` for the snapshot as the
    node encoded it (interface §3.1 JSON), which is what the node gives (no decoding).
    ``publish_ack(ack)`` is called on the reader thread for each ack made in a browser.
    """

    def __init__(self, site: Site, config: WebConfig, *, acks: Path, publish_ack: Callable[[Ack], None] | None = None,
                 listen: str | None = None) -> None:
        try:  # checked here, at start-up: what the child is sent to serve
            self._what = pickle.dumps((site, config, acks))
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            raise ConfigError(f"{site.path}: web: the site cannot be handed to the map process: {error}") from None
        self._listen = listen  # after the first start: the address it got (a restart keeps the URL)
        self.publish_ack = publish_ack
        self._pending = _Pending(config.recent_alerts)
        self._closing = threading.Event()
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._stream: BinaryIO | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.restarts = 0

    # -- life -----------------------------------------------------------------------------
    def start(self) -> MapProcess:
        """Start the child and wait until it listens; its start-up error (ConfigError, OSError) is raised here."""
        self._process, self._sock, self._stream, self.url = self._spawn()
        self._threads = [threading.Thread(target=self._write_loop, name="map-writer", daemon=True),
                         threading.Thread(target=self._read_loop, name="map-reader", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _spawn(self) -> tuple[subprocess.Popen, socket.socket, BinaryIO, str]:
        """A started child: (process, our socket, its read stream, the URL it serves)."""
        ours, theirs = socket.socketpair()
        # the child imports this very package, wherever the node's came from
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            process = subprocess.Popen([sys.executable, "-m", "fusion.web.process", str(theirs.fileno())],
                                       pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        stream = ours.makefile("rb")
        why = ""
        try:
            write_frame(ours, _SPEC, pickle.dumps((self._what, self._listen, logging.getLogger().getEffectiveLevel())))
            ours.settimeout(_START_TIMEOUT_S)
            answer = read_frame(stream)
            ours.settimeout(None)
        except OSError as error:  # a timeout, or a child gone before reading
            answer, why = None, f"; {error}"
        if answer is None or answer[0] != _READY:
            stream.close()
            ours.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
            if process.poll() is None:
                process.kill()
                process.wait()
            if answer is not None and answer[0] == _FAILED:
                kind, message = msgspec.json.decode(answer[1])
                raise (ConfigError if kind == "ConfigError" else OSError)(message)
            raise OSError(f"the map server process did not start (exit code {process.poll()}{why}); "
                          "see the log above")
        url = answer[1].decode()
        self._listen = url.split("://", 1)[1].rstrip("/")  # port 0 chose one: a restart keeps it
        return process, ours, stream, url

    def close(self) -> None:
        """Stop the child (it ends when its socket closes) and the threads."""
        self._closing.set()
        with self._pending.ready:
            self._pending.ready.notify()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        if self._process is not None:
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                log.error("the map server process did not stop within 10 s; killed")
                self._process.kill()
                self._process.wait()
        for thread in self._threads:
            thread.join(5)
        if self._sock is not None:
            self._sock.close()

    # -- hand-over from the node (any thread) ----------------------------------------------
    def on_snapshot_json(self, payload: bytes) -> None:
        """A track snapshot as interface §3.1 JSON; only the newest not yet sent is kept."""
        produced = time.time()
        with self._pending.ready:
            self._pending.snapshot = (produced, payload)
            self._pending.ready.notify()

    def on_snapshot(self, snapshot: dict) -> None:
        self.on_snapshot_json(_encode(snapshot))

    def on_alerts(self, alerts: list[dict]) -> None:
        if alerts:
            self._put(self._pending.alerts, _encode(alerts))

    def on_status(self, status: dict) -> None:
        payload = _encode(status)
        with self._pending.ready:
            self._pending.status = payload
            self._pending.ready.notify()

    def on_ack(self, ack: Ack) -> None:
        """An ack from elsewhere (another node's operators, via MQTT)."""
        self._put(self._pending.acks, _encode(ack))

    def _put(self, queue: collections.deque, payload: bytes) -> None:
        with self._pending.ready:
            if len(queue) == queue.maxlen:
                self._pending.dropped += 1
            queue.append(payload)
            self._pending.ready.notify()

    # -- writer and reader threads ---------------------------------------------------------
    def _write_loop(self) -> None:
        pending = self._pending
        while not self._closing.is_set():
            with pending.ready:
                while not self._closing.is_set() and not pending.waiting():
                    pending.ready.wait()
                frames, sock = pending.take(), self._sock
            try:
                for kind, parts in frames:
                    write_frame(sock, kind, *parts)
            except OSError:  # the child is gone: the reader starts another, which is sent the recent alerts
                time.sleep(0.1)

    def _read_loop(self) -> None:
        while not self._closing.is_set():
            frame = read_frame(self._stream)
            if frame is None:
                if not self._closing.is_set():
                    self._restart()
                continue
            kind, payload = frame
            if kind == _ACK and self.publish_ack is not None:
                try:
                    self.publish_ack(decode_ack(payload))
                except AckError as error:  # our own child wrote it: a bug, not an operator's mistake
                    log.error("map server process sent a bad ack: %s", error)

    def _restart(self) -> None:
        """The child ended unasked: log it, start another (backing off), send it the recent alerts and status."""
        try:
            code = self._process.wait(10)
        except subprocess.TimeoutExpired:  # closed its socket but hangs
            self._process.kill()
            code = self._process.wait()
        delay = 1.0
        log.error("the map server process ended (exit code %s); starting it again in %.0f s "
                  "(alerts and tracks keep flowing on MQTT)", code, delay)
        while not self._closing.wait(delay):
            try:
                process, sock, stream, url = self._spawn()
            except (ConfigError, OSError) as error:
                delay = min(delay * 2, _MAX_RESTART_DELAY_S)
                log.error("the map server process could not start again (%s); trying again in %.0f s", error, delay)
                continue
            with self._pending.ready:  # the writer sends on the new socket from its next frames on
                old = (self._stream, self._sock)
                self._process, self._sock, self._stream, self.url = process, sock, stream, url
                self._pending.resend = True
                self._pending.ready.notify()
            for one in old:
                with contextlib.suppress(OSError):
                    one.close()
            self.restarts += 1
            log.warning("map server process started again (pid %d) at %s", process.pid, url)
            return


# -- the child ---------------------------------------------------------------------------
def _serve(sock: socket.socket) -> int:
    """The child's life: read the spec, start the server, answer, then hand frames to it until EOF."""
    from fusion.web.server import WebServer, name_os_thread

    name_os_thread("bf-web")
    with contextlib.suppress(OSError):
        os.nice(MAP_NICE)
    stream = sock.makefile("rb")
    spec = read_frame(stream)
    if spec is None or spec[0] != _SPEC:
        return 2
    what, listen, level = pickle.loads(spec[1])  # from our own parent, over a private socket pair
    site, config, acks = pickle.loads(what)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    send_lock = threading.Lock()

    def publish_ack(ack: Ack) -> None:  # on the web thread
        with send_lock:
            write_frame(sock, _ACK, _encode(ack))

    try:
        server = WebServer(site, config, acks=acks, publish_ack=publish_ack, listen=listen).start()
    except (ConfigError, OSError) as error:
        write_frame(sock, _FAILED, _encode([type(error).__name__, str(error)]))
        return 1
    try:
        with send_lock:
            write_frame(sock, _READY, server.url.encode())
        while (frame := read_frame(stream)) is not None:
            kind, payload = frame
            if kind == _SNAPSHOT:
                server.on_snapshot_json(payload[_PRODUCED.size:], _PRODUCED.unpack_from(payload)[0])
            elif kind == _ALERTS:
                server.on_alerts(msgspec.json.decode(payload))
            elif kind == _STATUS:
                server.on_status(msgspec.json.decode(payload))
            elif kind == _ACK:
                server.on_ack(decode_ack(payload))
    finally:
        server.close()
    return 0


def main(argv: list[str]) -> int:
    # Ctrl-C in a terminal reaches the whole process group: the node stops its child itself, after its drain
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with socket.socket(fileno=int(argv[0])) as sock:
        try:
            return _serve(sock)
        except (BrokenPipeError, ConnectionResetError):  # the node went away first
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
