"""The live map's server: aiohttp in its own thread and event loop.

The live node runs it in a process of its own (:mod:`fusion.web.process`), ``replay
--web`` beside its player. Whoever feeds it only hands things over
(:meth:`WebServer.on_snapshot` or, as JSON, :meth:`~WebServer.on_snapshot_json`,
:meth:`~WebServer.on_alerts`, :meth:`~WebServer.on_status`, :meth:`~WebServer.on_ack`):
each call stores its item under a lock in a bounded place — the newest snapshot (one
slot), the alerts (a bounded deque), the newest status — and wakes the web loop at most
once, so the node never waits for a browser and memory stays bounded whatever the
browsers do. The web thread compacts and encodes each track once per snapshot (only when
a browser is ready for it: connected and done drawing the one before), and joins the
tracks each agency may see into one frame for all that agency's browsers; each browser
then has one snapshot slot (a slow browser skips to the newest snapshot, it never works
through a backlog) and a bounded queue of alerts and acks (a browser that lets it fill
is disconnected: it reloads, gets the current picture).

Routes: ``/`` the MapLibre page, ``/lite`` the Leaflet page, ``/static/…`` their
files (vendored, fixed MIME types), ``/ws`` the feed (``?token=…`` when a tokens
file is configured; a wrong token gets HTTP 401 before any data).

Feed frames (JSON text, server → browser): ``hello`` (view, site, jurisdictions
GeoJSON, sensors, recent alerts and acks, status, replay state), ``snapshot``,
``alert``, ``ack``, ``status``, ``replay``, ``reset`` (replay moved back), ``error``, and
``batch`` (``{"type": "batch", "frames": [...]}``: the frames of those types that waited for
this browser, in order, as one WebSocket message).
Browser → server: ``{"type": "drawn", "t"}`` once a snapshot is drawn (flow control: the
next snapshot is sent only then, so a slow browser is never sent a backlog that would wait
in its socket buffers; after :data:`_DRAWN_TIMEOUT_S` it is sent anyway),
``{"type": "ack", "alert_id", "state"}`` and, in replay mode,
``{"type": "control", "action": "play"|"pause"|"speed"|"seek", "value": x}``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import itertools
import json
import logging
import math
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import msgspec
import numpy as np
from aiohttp import WSMsgType, web

from fusion.config import ConfigError, Site, WebConfig
from fusion.web.acks import ACK_STATES, Ack, AckStore
from fusion.web.views import ALL, ELLIPSE_SIGMA_SCALE, AgencyView, Operator, agency_views, compact_tracks, \
    find_operator, load_tokens

__all__ = ["WebServer", "STATIC_DIR", "parse_listen", "name_os_thread"]

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
_encode = msgspec.json.Encoder().encode
_MIME = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png",
         ".svg": "image/svg+xml", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
         ".geojson": "application/geo+json"}
#: no resource from anywhere but this server; maplibre builds its worker and images from blobs
_CSP = ("default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; worker-src 'self' blob:; "
        "child-src 'self' blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; font-src 'self'")
_MAX_CLIENT_FRAMES = 5000  # alerts/acks waiting for one browser; beyond it the browser is dropped
_MAX_BATCH = 500  # frames sent as one WebSocket message (a ``batch`` frame)
_MAX_PENDING_ALERTS = 10_000  # alerts handed over but not yet taken by the web thread
_CONTROL_ACTIONS = ("play", "pause", "speed", "seek")
#: a browser that has not reported a snapshot drawn within this gets the next one anyway (a client
#: that never reports, e.g. a script, gets one snapshot per this many seconds at most)
_DRAWN_TIMEOUT_S = 5.0


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 in brackets) → (host, port); ValueError saying what is valid."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8080), got {text!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class _Compact:
    """A snapshot as the page draws it: each track compacted and encoded (JSON), with its position."""

    t: float
    produced: float  # wall clock when the node handed it over
    tracks: list[bytes]
    east_m: np.ndarray
    north_m: np.ndarray

    @classmethod
    def of(cls, snapshot: dict | bytes, produced: float) -> _Compact:
        """``snapshot`` as a dict or as its JSON (decoded here, in the web thread, only once a browser needs it)."""
        if not isinstance(snapshot, dict):
            snapshot = msgspec.json.decode(snapshot)
        tracks, east, north = compact_tracks(snapshot.get("tracks", []))
        return cls(snapshot["t"], produced, [_encode(track) for track in tracks], east, north)


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    view: AgencyView
    operator: str
    frames: collections.deque = field(default_factory=collections.deque)
    snapshot: bool = False  # a snapshot newer than the last one sent is waiting
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    #: monotonic time the last snapshot was sent and not yet reported drawn (None: the browser is ready)
    in_flight_since: float | None = None

    def push(self, frame: str) -> None:
        if len(self.frames) >= _MAX_CLIENT_FRAMES:
            self.overflowed = True
        else:
            self.frames.append(frame)
        self.wake.set()

    def set_snapshot(self) -> None:
        self.snapshot = True
        self.wake.set()


class WebServer:
    """The map server; start with :meth:`start`, hand data with the ``on_*`` methods (any thread).

    ``acks`` is the ack store, or the path of one to open.  ``publish_ack(ack)`` is called (in the web thread) for every ack an operator makes,
    e.g. to publish it on MQTT; ``controls`` receives replay control dicts (the page
    shows replay controls only when it is given).
    """

    def __init__(self, site: Site, config: WebConfig, *, acks: AckStore | Path,
                 publish_ack: Callable[[Ack], None] | None = None,
                 controls: queue.Queue | None = None, listen: str | None = None) -> None:
        self.site = site
        self.config = config
        self.host, self.port = parse_listen(listen or config.listen)
        self.operators: dict[str, Operator] = load_tokens(site, site.resolve(config.tokens)) if config.tokens else {}
        if not self.operators and self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"{site.path}: web.tokens: needed to listen on {self.host} (not a loopback address): "
                              "without a tokens file every browser would see every agency's tracks and alerts")
        self.views = agency_views(site, config.track_margin_m)
        self.publish_ack = publish_ack
        self.controls = controls
        self._ssl = self._ssl_context() if config.tls_cert else None
        self._geojson = json.loads(site.resolve(site.config.site.jurisdictions).read_bytes())
        self._sensors = [_sensor_dict(s) for s in site.sensors]
        self._basemap = site.resolve(config.basemap) if config.basemap else None
        self._basemap_zooms = _check_basemap(site, self._basemap) if self._basemap else None
        self.acks = acks if isinstance(acks, AckStore) else AckStore(acks)  # opened once everything is checked
        # handed over by the node, under _lock
        self._lock = threading.Lock()
        self._pending_snapshot: tuple[dict | bytes, float] | None = None
        self._pending_alerts: collections.deque = collections.deque(maxlen=_MAX_PENDING_ALERTS)
        self._pending_acks: collections.deque = collections.deque(maxlen=_MAX_PENDING_ALERTS)
        self._pending_status: dict | None = None
        self._pending_replay: dict | None = None
        self._pending_reset = False
        self._scheduled = False
        self.dropped_alerts = 0  # alerts the web thread could not take in time (pending deque full)
        # the web thread's own
        self._clients: set[_Client] = set()
        self._recent: collections.deque = collections.deque(maxlen=config.recent_alerts)
        self._snapshot: tuple[dict | bytes, float] | None = None  # the newest snapshot and when it was handed over
        self._latest: _Compact | None = None  # it compacted for the page (made when a browser needs it)
        self._frames: dict[str, str] = {}  # newest snapshot frame per view
        self._status: dict | None = None
        self._replay: dict | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: web.AppRunner | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.site.resolve(self.config.tls_cert), self.site.resolve(self.config.tls_key))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"{self.site.path}: web.tls_cert, web.tls_key: cannot load for TLS: {error}") from None
        return context

    # -- life ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._ssl else 'http'}://{host}:{self.port}/"

    def start(self) -> WebServer:
        """Listen (port 0: a free one, read back into ``port``); OSError if it cannot."""
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise OSError(f"the map server cannot listen on {self.host}:{self.port}: {self._error}; "
                          "choose another [web] listen address or port") from None
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def close(self) -> None:
        """Stop serving and close the ack store."""
        self.stop()
        self.acks.close()

    def _run(self) -> None:
        name_os_thread("bf-web")
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except OSError as error:
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for client in list(self._clients):
                loop.run_until_complete(client.ws.close(code=1001, message=b"server stopping"))
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _listen(self) -> None:
        app = web.Application(middlewares=[_headers])
        app.router.add_get("/", self._page("index.html"))
        app.router.add_get("/lite", self._page("lite.html"))
        app.router.add_get("/static/{path:.+}", self._static)
        app.router.add_get("/ws", self._feed)
        if self._basemap is not None:  # served with HTTP ranges: the page reads only the tiles it shows
            app.router.add_get("/basemap.pmtiles", self._basemap_file)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    # -- hand-over from the node (any thread) ----------------------------------------------
    def _wake(self) -> None:
        """Under ``_lock``: make sure the web loop drains once."""
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def on_snapshot(self, snapshot: dict) -> None:
        """A track snapshot (interface §3.1); only the newest not yet taken is kept."""
        self.on_snapshot_json(snapshot)

    def on_snapshot_json(self, snapshot: bytes | dict, produced: float | None = None) -> None:
        """A track snapshot as its interface §3.1 JSON (or a dict), handed over at wall time ``produced``
        (None: now); it is decoded in the web thread, and only if a browser takes it."""
        with self._lock:
            self._pending_snapshot = (snapshot, time.time() if produced is None else produced)
            self._wake()

    def on_alerts(self, alerts: list[dict]) -> None:
        if not alerts:
            return
        with self._lock:
            room = self._pending_alerts.maxlen - len(self._pending_alerts)
            self.dropped_alerts += max(0, len(alerts) - room)
            self._pending_alerts.extend(alerts)
            self._wake()

    def on_status(self, status: dict) -> None:
        with self._lock:
            self._pending_status = status
            self._wake()

    def on_ack(self, ack: Ack) -> None:
        """An ack from elsewhere (another node's operators, via MQTT)."""
        with self._lock:
            self._pending_acks.append(ack)
            self._wake()

    def on_replay(self, state: dict, reset: bool = False) -> None:
        """Replay position/controls; ``reset``: the replay went back, forget the alerts shown."""
        with self._lock:
            self._pending_replay = state
            self._pending_reset = self._pending_reset or reset
            if reset:
                self._pending_alerts.clear()
                self._pending_snapshot = None
            self._wake()

    # -- web thread ---------------------------------------------------------------------
    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
            snapshot, self._pending_snapshot = self._pending_snapshot, None
            alerts = list(self._pending_alerts)
            self._pending_alerts.clear()
            acks = list(self._pending_acks)
            self._pending_acks.clear()
            status, self._pending_status = self._pending_status, None
            replay, self._pending_replay = self._pending_replay, None
            reset, self._pending_reset = self._pending_reset, False
        if reset:
            self._recent.clear()
            self._snapshot = self._latest = None
            self._frames.clear()
            for client in self._clients:
                client.push('{"type":"reset"}')
        self._recent.extend(alerts)
        for alert in alerts if self._clients else ():
            frame = _encode({"type": "alert", "alert": alert}).decode()
            for client in self._clients:
                if client.view.sees_alert(alert):
                    client.push(frame)
        for ack in acks:
            if self.acks.add(ack):
                self._broadcast_ack(ack)
        if status is not None:
            self._status = status
            frame = _encode({"type": "status", "status": status}).decode()
            for client in self._clients:
                client.push(frame)
        if replay is not None:
            self._replay = replay
            frame = _encode({"type": "replay", "replay": replay}).decode()
            for client in self._clients:
                client.push(frame)
        if snapshot is not None:  # compacted and encoded only if a browser is there to take it
            self._snapshot, self._latest = snapshot, None
            self._frames.clear()
            for client in self._clients:  # its frame is made when a browser is ready for it
                client.set_snapshot()
        for client in [c for c in self._clients if c.overflowed]:
            log.warning("map: a browser of view %s fell %d frames behind; disconnected", client.view.agency,
                        _MAX_CLIENT_FRAMES)
            self._clients.discard(client)
            asyncio.ensure_future(client.ws.close(code=1013, message=b"too slow: reload"))

    def _snapshot_frame(self, view: AgencyView) -> str:
        """The newest snapshot as this view may see it, made once per view for all its browsers.

        Each track is compacted and encoded once per snapshot; a view's frame is then
        only its mask and a join of the encoded tracks it may see, so another agency
        costs a fraction of a millisecond, not another encoding of 2,000 tracks."""
        if view.agency not in self._frames:
            if self._snapshot is None:
                return ""
            if self._latest is None:
                self._latest = _Compact.of(*self._snapshot)
            latest = self._latest
            head = _encode({"type": "snapshot", "t": latest.t, "produced": round(latest.produced, 3),
                            "sent": round(time.time(), 3)})
            tracks = b",".join(itertools.compress(latest.tracks, view.sees(latest.east_m, latest.north_m)))
            self._frames[view.agency] = (head[:-1] + b',"tracks":[' + tracks + b"]}").decode()
        return self._frames[view.agency]

    def _broadcast_ack(self, ack: Ack) -> None:
        frame = _encode({"type": "ack", "ack": ack.to_dict()}).decode()
        for client in self._clients:
            if client.view.agency == ack.agency_id:
                client.push(frame)

    # -- HTTP ---------------------------------------------------------------------------
    def _page(self, name: str):
        async def handler(request: web.Request) -> web.Response:
            return _file_response(STATIC_DIR / name)
        return handler

    async def _static(self, request: web.Request) -> web.StreamResponse:
        path = (STATIC_DIR / request.match_info["path"]).resolve()
        if not path.is_relative_to(STATIC_DIR) or not path.is_file() or path.suffix not in _MIME:
            raise web.HTTPNotFound()
        return _file_response(path)

    async def _basemap_file(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self._basemap, headers={"Content-Type": "application/octet-stream"})

    def _authorise(self, request: web.Request) -> tuple[AgencyView, str]:
        if not self.operators:
            return self.views[ALL], request.query.get("operator", "operator")[:64] or "operator"
        operator = find_operator(self.operators, request.query.get("token", ""))
        if operator is None:
            raise web.HTTPUnauthorized(text="unknown or missing token: open the page with ?token=YOUR-TOKEN")
        return self.views[operator.agency], operator.name

    async def _feed(self, request: web.Request) -> web.WebSocketResponse:
        view, operator = self._authorise(request)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024, compress=False)
        await ws.prepare(request)
        client = _Client(ws, view, operator)
        await ws.send_str(self._hello(client))
        self._clients.add(client)
        writer = asyncio.ensure_future(self._write(client))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._command(client, message.data)
        finally:
            self._clients.discard(client)
            writer.cancel()
        return ws

    def _hello(self, client: _Client) -> str:
        alerts = [a for a in self._recent if client.view.sees_alert(a)]
        agency = None if client.view.agency == ALL else client.view.agency
        acks = self.acks.latest(agency if agency else "all", [a["alert_id"] for a in alerts])
        snapshot = self._snapshot_frame(client.view)
        return _encode({
            "type": "hello", "view": client.view.agency, "operator": client.operator,
            "site": {"name": self.site.name, "node_id": self.site.node_id,
                     "origin": {"lat": self.site.config.site.origin.lat, "lon": self.site.config.site.origin.lon}},
            "jurisdictions": self._geojson, "sensors": self._sensors, "alerts": alerts,
            "acks": [a.to_dict() for a in acks], "status": self._status, "replay": self._replay,
            "controls": self.controls is not None,
            "basemap": {"url": "/basemap.pmtiles", "min_zoom": self._basemap_zooms[0],
                        "max_zoom": self._basemap_zooms[1]} if self._basemap else None, "ellipse_sigma_scale": round(ELLIPSE_SIGMA_SCALE, 4),
            "snapshot": json.loads(snapshot) if snapshot else None,
        }).decode()

    async def _write(self, client: _Client) -> None:
        """One browser's sender: queued alerts/acks first, then the newest snapshot once the browser
        has drawn the one before (never a backlog)."""
        try:
            while not client.ws.closed:
                try:
                    await asyncio.wait_for(client.wake.wait(), _DRAWN_TIMEOUT_S / 4)
                except asyncio.TimeoutError:
                    pass
                client.wake.clear()
                while client.frames:  # one WebSocket message for what waits: a flood of alerts costs
                    await client.ws.send_str(_batch(client.frames))  # a few sends, not one per alert
                busy = client.in_flight_since is not None and \
                    time.monotonic() - client.in_flight_since < _DRAWN_TIMEOUT_S
                if client.snapshot and not busy:
                    client.snapshot = False
                    frame = self._snapshot_frame(client.view)
                    if frame:
                        client.in_flight_since = time.monotonic()
                        await client.ws.send_str(frame)
        except (ConnectionError, RuntimeError):  # the browser went away mid-send
            pass

    def _command(self, client: _Client, text: str) -> None:
        """A browser's ack or replay control; a bad one gets an ``error`` frame saying why."""
        try:
            command = json.loads(text)
            if not isinstance(command, dict):
                raise ValueError("expected a JSON object")
            if command.get("type") == "drawn":
                client.in_flight_since = None
                client.wake.set()
            elif command.get("type") == "ack":
                self._ack_from(client, command)
            elif command.get("type") == "control" and self.controls is not None:
                self._control(command)
            else:
                raise ValueError(f"unknown command type {command.get('type')!r}: expected 'ack'"
                                 + (" or 'control'" if self.controls is not None else ""))
        except ValueError as error:
            client.push(_encode({"type": "error", "error": str(error)}).decode())

    def _ack_from(self, client: _Client, command: dict) -> None:
        alert_id, state = command.get("alert_id"), command.get("state")
        if state not in ACK_STATES:
            raise ValueError(f"ack.state: expected one of {', '.join(ACK_STATES)}, got {state!r}")
        if not any(a["alert_id"] == alert_id and client.view.sees_alert(a) for a in self._recent):
            raise ValueError(f"ack.alert_id: no recent alert {alert_id!r} in this view")
        agency = "all" if client.view.agency == ALL else client.view.agency
        ack = Ack(alert_id=alert_id, agency_id=agency, state=state, operator=client.operator, t=round(time.time(), 3))
        self.acks.add(ack)
        self._broadcast_ack(ack)
        if self.publish_ack is not None:
            self.publish_ack(ack)

    def _control(self, command: dict) -> None:
        action, value = command.get("action"), command.get("value")
        if action not in _CONTROL_ACTIONS:
            raise ValueError(f"control.action: expected one of {', '.join(_CONTROL_ACTIONS)}, got {action!r}")
        if action in ("speed", "seek") and (not isinstance(value, (int, float)) or not math.isfinite(value)
                                            or (action == "speed" and not 0 < value <= 1000)):
            raise ValueError(f"control.value: expected a number ({'0 < speed ≤ 1000' if action == 'speed' else 'a time'}),"
                             f" got {value!r}")
        try:
            self.controls.put_nowait((action, value))
        except queue.Full:
            raise ValueError("control: too many controls at once; try again") from None


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in the OS (Linux ``prctl(PR_SET_NAME)``; ``top -H`` and
    ``/proc/PID/task/*/comm`` show it, so the map server's CPU can be told from the node's)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # 15 = PR_SET_NAME


@web.middleware
async def _headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _batch(frames: collections.deque) -> str:
    """Take up to :data:`_MAX_BATCH` encoded frames from ``frames``: one as it is, more as a ``batch`` frame."""
    if len(frames) == 1:
        return frames.popleft()
    taken = [frames.popleft() for _ in range(min(len(frames), _MAX_BATCH))]
    return '{"type":"batch","frames":[' + ",".join(taken) + "]}"


def _file_response(path: Path) -> web.Response:
    headers = {"Cache-Control": "no-cache" if path.suffix == ".html" else "max-age=3600"}
    return web.Response(body=path.read_bytes(), headers={**headers, "Content-Type": _MIME[path.suffix]})


#: PMTiles v3 header: the magic, then the tile type at byte 99 and min/max zoom at 100/101
_PMTILES_RASTER = {2: "png", 3: "jpeg", 4: "webp"}


def _check_basemap(site: Site, path: Path) -> tuple[int, int]:
    """The (min, max) zoom of a raster PMTiles v3 file; :class:`ConfigError` naming ``web.basemap`` otherwise."""
    where = f"{site.path}: web.basemap"
    try:
        with open(path, "rb") as handle:
            header = handle.read(127)
    except OSError as error:
        raise ConfigError(f"{where}: cannot read {path}: {error.strerror}") from None
    if len(header) < 127 or header[:7] != b"PMTiles" or header[7] != 3:
        raise ConfigError(f"{where}: {path} is not a PMTiles version 3 file")
    if header[99] not in _PMTILES_RASTER:
        raise ConfigError(f"{where}: {path} holds {'vector (MVT)' if header[99] == 1 else 'unknown'} tiles; "
                          "the map draws raster basemaps only (PNG, JPEG or WebP tiles)")
    return header[100], header[101]


def _sensor_dict(sensor) -> dict:
    """A sensor and its coverage for the page: radars a range circle, ground sensors a radius, drones an orbit."""
    spec = sensor.spec
    out = {"id": spec.id, "kind": sensor.kind}
    if sensor.kind == "radar":
        out.update(lat=spec.lat, lon=spec.lon, range_m=spec.max_range_m)
    elif sensor.kind == "ground":
        out.update(lat=spec.lat, lon=spec.lon, range_m=spec.radius_m)
    elif getattr(spec, "patrol_lat", None) is not None:
        out.update(lat=spec.patrol_lat, lon=spec.patrol_lon, range_m=spec.patrol_radius_m)
    return out
