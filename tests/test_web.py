"""The map server over real loopback sockets: per-agency views, acks, hand-over, static files."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import shapely

from fusion.config import ConfigError, WebConfig
from fusion.web import AckStore, WebServer
from fusion.web.acks import AckError, decode_ack
from fusion.web.views import agency_views, compact_tracks, load_tokens
from tests.broker import make_certificates

TOKENS = {"agency-b": "b" * 24, "agency-a-mil": "m" * 24, "agency-a": "a" * 24}
MARGIN_M = 500.0


def write_tokens(folder: Path, mode: int = 0o600) -> Path:
    path = folder / "tokens.toml"
    path.write_text("".join(f'[[operator]]\ntoken = "{token}"\nagency = "{agency}"\nname = "desk-{agency}"\n\n'
                            for agency, token in TOKENS.items()))
    path.chmod(mode)
    return path


@pytest.fixture
def server(tmp_path, demo_site):
    tokens = write_tokens(tmp_path)
    config = WebConfig(listen="127.0.0.1:0", tokens=str(tokens), track_margin_m=MARGIN_M)
    store = AckStore(tmp_path / "acks.sqlite")
    published = []
    srv = WebServer(demo_site, config, acks=store, publish_ack=published.append).start()
    srv.published = published
    yield srv
    srv.stop()
    store.close()


def unbatch(frame: dict) -> list[dict]:
    """The frames of one WebSocket message (a ``batch`` frame carries several, in order)."""
    return frame["frames"] if frame["type"] == "batch" else [frame]


def collect(url: str, token: str, seconds: float, send: list[dict] | None = None, until=None,
            draws: bool = True) -> list[dict]:
    """Every frame one browser of ``token`` receives in ``seconds`` (after sending ``send``); it reports
    each snapshot drawn at once unless ``draws`` is false."""
    async def run() -> list[dict]:
        frames = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{url}ws?token={token}") as ws:
                for command in send or []:
                    await ws.send_str(json.dumps(command))
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    try:
                        message = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
                    except asyncio.TimeoutError:
                        break
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    frames.extend(unbatch(json.loads(message.data)))
                    if frames[-1]["type"] == "snapshot" and draws:  # as a browser does once it has drawn it
                        await ws.send_str(json.dumps({"type": "drawn", "t": frames[-1]["t"]}))
                    if until and until(frames):
                        break
        return frames
    return asyncio.run(run())


def visible_to(site, agency: str, lat: float, lon: float) -> bool:
    """Independent of the server: distance from the point to the agency's jurisdictions ≤ margin."""
    e, n, _ = site.frame.to_enu(lat, lon)
    point = shapely.Point(float(e), float(n))
    return any(agency in j.recipients and j.polygon.distance(point) <= MARGIN_M + 1e-6 for j in site.jurisdictions)


def test_two_agencies_never_see_each_others_private_tracks_or_alerts(server, demo_site, short_log):
    """A whole replay's snapshots and alerts go through; each agency's frames hold only what it may see."""
    _, expected = short_log
    alerts = [a.to_dict() for a in expected.alerts]
    snapshots = [s.to_dict() for s in expected.snapshots]
    # a zone alert for the depot's agency only, and tracks in the depot and deep in country B
    private = dict(alerts[0], alert_id="depot-private", type="zone_entry", recipients=["agency-a-mil"])
    alerts.append(private)
    depot = shapely.centroid(next(j for j in demo_site.jurisdictions if j.id == "depot-zone").polygon)
    planted = []
    for name, (e, n) in {"in-depot": (depot.x, depot.y), "north-b": (0.0, 6000.0)}.items():
        lat, lon, _ = demo_site.frame.point_to_geodetic(e, n)
        planted.append(dict(snapshots[-1]["tracks"][0] if snapshots[-1]["tracks"] else _any_track(snapshots),
                            track_id=name, lat=lat, lon=lon, east_m=e, north_m=n))
    snapshots.append(dict(snapshots[-1], t=snapshots[-1]["t"] + 1, tracks=planted))
    frames: dict[str, list[dict]] = {}
    sentinel = dict(snapshots[-1], t=snapshots[-1]["t"] + 1)  # sent last: the browsers stop reading at it

    async def both() -> None:
        loop = asyncio.get_running_loop()
        tasks = {agency: loop.run_in_executor(None, collect, server.url, TOKENS[agency], 6.0, None,
                                              lambda f: any(x.get("t") == sentinel["t"] for x in f))
                 for agency in ("agency-b", "agency-a-mil")}
        await asyncio.sleep(1.0)  # both connected
        for snapshot in snapshots:
            server.on_snapshot(snapshot)
            await asyncio.sleep(0.002)
        server.on_alerts(alerts)
        await asyncio.sleep(0.3)
        server.on_snapshot(sentinel)
        for agency, task in tasks.items():
            frames[agency] = await task

    asyncio.run(both())
    for agency in ("agency-b", "agency-a-mil"):
        got = frames[agency]
        assert got[0]["type"] == "hello" and got[0]["view"] == agency
        seen_alerts = [f["alert"] for f in got if f["type"] == "alert"]
        seen_tracks = [t for f in got if f["type"] == "snapshot" for t in f["tracks"]]
        assert seen_alerts and seen_tracks, agency
        assert all(agency in a["recipients"] for a in seen_alerts), agency
        assert all(visible_to(demo_site, agency, t["lat"], t["lon"]) for t in seen_tracks), agency
    b_ids = {t["track_id"] for f in frames["agency-b"] if f["type"] == "snapshot" for t in f["tracks"]}
    mil_ids = {t["track_id"] for f in frames["agency-a-mil"] if f["type"] == "snapshot" for t in f["tracks"]}
    assert "north-b" in b_ids and "in-depot" not in b_ids
    assert "in-depot" in mil_ids and "north-b" not in mil_ids
    assert "depot-private" not in json.dumps(frames["agency-b"])
    assert "depot-private" in json.dumps(frames["agency-a-mil"])
    # the filter does not just drop everything: B saw every replay alert addressed to it
    assert {a["alert_id"] for a in alerts if "agency-b" in a["recipients"]} == \
        {f["alert"]["alert_id"] for f in frames["agency-b"] if f["type"] == "alert"}


def _any_track(snapshots):
    return next(t for s in snapshots for t in s["tracks"])


def test_a_wrong_or_missing_token_gets_401_and_no_data(server):
    async def attempt(query: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"{server.url}ws{query}"):
                    return 101
            except aiohttp.WSServerHandshakeError as error:
                return error.status
    assert asyncio.run(attempt("")) == 401
    assert asyncio.run(attempt("?token=" + "x" * 24)) == 401
    assert asyncio.run(attempt("?token=" + TOKENS["agency-b"])) == 101


def test_an_ack_reaches_the_agencys_other_operators_is_stored_and_published(server, short_log, tmp_path):
    _, expected = short_log
    alert = next(a.to_dict() for a in expected.alerts if {"agency-a", "agency-b"} <= set(a.recipients))
    server.on_alerts([alert])
    time.sleep(0.2)

    async def scenario():
        loop = asyncio.get_running_loop()
        watcher_b = loop.run_in_executor(None, collect, server.url, TOKENS["agency-b"], 3.0, None,
                                         lambda f: any(x["type"] == "ack" for x in f))
        watcher_a = loop.run_in_executor(None, collect, server.url, TOKENS["agency-a"], 2.0)
        await asyncio.sleep(0.5)
        acker = loop.run_in_executor(None, collect, server.url, TOKENS["agency-b"], 1.0,
                                     [{"type": "ack", "alert_id": alert["alert_id"], "state": "acknowledged"},
                                      {"type": "ack", "alert_id": alert["alert_id"], "state": "bogus"},
                                      {"type": "ack", "alert_id": "no-such-alert", "state": "dismissed"}])
        return await watcher_b, await watcher_a, await acker

    frames_b, frames_a, frames_acker = asyncio.run(scenario())
    acks_b = [f["ack"] for f in frames_b if f["type"] == "ack"]
    assert acks_b and acks_b[0]["alert_id"] == alert["alert_id"] and acks_b[0]["agency_id"] == "agency-b"
    assert acks_b[0]["operator"] == "desk-agency-b" and acks_b[0]["state"] == "acknowledged"
    assert not [f for f in frames_a if f["type"] == "ack"]  # agency A's operators: not their ack
    errors = [f["error"] for f in frames_acker if f["type"] == "error"]
    assert any("ack.state" in e and "bogus" in e for e in errors)
    assert any("ack.alert_id" in e and "no-such-alert" in e for e in errors)
    assert [a.alert_id for a in server.published] == [alert["alert_id"]]
    stored = server.acks.latest("agency-b")
    assert [(a.alert_id, a.state) for a in stored] == [(alert["alert_id"], "acknowledged")]
    hello = collect(server.url, TOKENS["agency-b"], 1.0, until=lambda f: True)[0]
    assert hello["acks"][0]["alert_id"] == alert["alert_id"]  # a browser that connects later sees it too


def test_handing_over_never_waits_for_the_web_thread_and_a_browser_gets_the_newest_snapshot(server, short_log):
    """With the web loop blocked for 1.5 s the node's calls return at once; afterwards the browser
    receives the newest snapshot, not the backlog of 500."""
    _, expected = short_log
    snapshot = expected.snapshots[-1].to_dict()

    async def scenario():
        loop = asyncio.get_running_loop()
        watcher = loop.run_in_executor(None, collect, server.url, TOKENS["agency-b"], 4.0, None,
                                       lambda f: any(x.get("t") == 499 for x in f))
        await asyncio.sleep(0.5)
        server._loop.call_soon_threadsafe(time.sleep, 1.5)  # the web thread is stuck
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        for i in range(500):
            server.on_snapshot(dict(snapshot, t=i))
            server.on_status({"node_id": "edge-1", "state": "online", "n": i})
        elapsed = time.perf_counter() - started
        return elapsed, await watcher

    elapsed, frames = asyncio.run(scenario())
    assert elapsed < 0.1, f"500 hand-overs took {elapsed:.3f} s while the web thread was blocked"
    snapshots = [f["t"] for f in frames if f["type"] == "snapshot"]
    assert snapshots[-1] == 499
    assert len(snapshots) <= 3, snapshots  # the hello's, maybe one more, and the newest
    statuses = [f["status"]["n"] for f in frames if f["type"] == "status"]
    assert statuses == [499]


def test_static_files_have_their_mime_types_and_stay_inside_the_folder(server):
    async def get(path: str) -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + path) as response:
                return response.status, response.headers.get("Content-Type", ""), await response.read()
    for path, mime in [("", "text/html"), ("lite", "text/html"), ("static/app.js", "text/javascript"),
                       ("static/vendor/maplibre/maplibre-gl.mjs", "text/javascript"),
                       ("static/vendor/maplibre/maplibre-gl-worker.mjs", "text/javascript"),
                       ("static/vendor/maplibre/maplibre-gl.css", "text/css"),
                       ("static/vendor/leaflet/leaflet.js", "text/javascript"),
                       ("static/vendor/leaflet/images/marker-icon.png", "image/png"),
                       ("static/vendor/maplibre/LICENSE.txt", "text/plain"),
                       ("static/vendor/leaflet/LICENSE.txt", "text/plain")]:
        status, content_type, body = asyncio.run(get(path))
        assert status == 200 and content_type.startswith(mime) and body, path
    assert asyncio.run(get("static/../server.py"))[0] == 404
    assert asyncio.run(get("static/%2e%2e/server.py"))[0] == 404
    assert asyncio.run(get("static/nothing.js"))[0] == 404


def test_tokens_file_is_checked(tmp_path, demo_site):
    good = write_tokens(tmp_path)
    assert {op.agency for op in load_tokens(demo_site, good).values()} == set(TOKENS)
    good.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_tokens(demo_site, good)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[operator]]\ntoken = "' + "z" * 20 + '"\nagency = "agency-x"\n')
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match=r"operator\[0\]\.agency: 'agency-x'.*known: agency-a"):
        load_tokens(demo_site, bad)
    bad.write_text('[[operator]]\ntoken = "short"\nagency = "agency-a"\n')
    with pytest.raises(ConfigError, match=r"operator\[0\]\.token: expected a string of at least 16"):
        load_tokens(demo_site, bad)


def test_web_config_refuses_an_open_view_off_loopback(tmp_path):
    from tests.broker import write_site
    from fusion.config import load_site

    path = write_site(tmp_path / "site", 1883, outbox=tmp_path / "outbox")
    text = path.read_text()
    path.write_text(text + '\n[web]\nlisten = "0.0.0.0:8080"\n')
    with pytest.raises(ConfigError, match=r"web\.tokens: needed when web\.listen is not a loopback"):
        load_site(path)
    path.write_text(text + '\n[web]\nlisten = "127.0.0.1:8080"\ntls_cert = "c.pem"\n')
    with pytest.raises(ConfigError, match=r"web\.tls_cert, web\.tls_key: give both"):
        load_site(path)
    path.write_text(text + '\n[web]\nlisten = "nonsense"\n')
    with pytest.raises(ConfigError, match=r"web\.listen"):
        load_site(path)


def test_agency_view_is_the_buffered_union_of_its_jurisdictions(demo_site):
    views = agency_views(demo_site, 1000.0)
    rng = np.random.default_rng(1)
    east, north = rng.uniform(-12000, 12000, 400), rng.uniform(-12000, 12000, 400)
    for agency in ("agency-a", "agency-b", "joint-centre", "agency-a-mil"):
        expected = [any(agency in j.recipients and j.polygon.distance(shapely.Point(e, n)) <= 1000.0
                        for j in demo_site.jurisdictions) for e, n in zip(east, north)]
        got = views[agency].sees(east, north)
        # the buffer is a polygonal approximation of the round offset: disagreement only within metres of it
        assert np.mean(got == np.array(expected)) > 0.99, agency


def test_compact_track_ellipse_follows_the_covariance():
    cov = np.zeros((4, 4))
    cov[:2, :2] = [[100.0, 0.0], [0.0, 25.0]]  # σ_east 10 m, σ_north 5 m: major axis east (bearing 90°)
    track = {"track_id": "x", "status": "confirmed", "lat": 47.0, "lon": 8.0, "east_m": 1.0, "north_m": 2.0,
             "heading_deg": 10.0, "speed_mps": 1.0, "covariance": cov.tolist(), "classification": {"person": 0.8, "animal": 0.2}}
    out, east, north = compact_tracks([track])
    assert out[0]["ellipse_m"] == [10.0, 5.0, 90.0]
    assert out[0]["class"] == "person" and out[0]["class_p"] == 0.8
    assert east.tolist() == [1.0] and north.tolist() == [2.0]


def test_compact_track_ellipse_matches_an_eigen_decomposition():
    """The closed form against numpy's eigh, for random covariances (semi-axes and bearing of the major axis)."""
    rng = np.random.default_rng(3)
    tracks = []
    for i in range(200):
        root = rng.normal(0, 5, (4, 4))
        cov = root @ root.T
        tracks.append({"track_id": str(i), "status": "confirmed", "lat": 47.0, "lon": 8.0, "east_m": 0.0,
                       "north_m": 0.0, "heading_deg": 0.0, "speed_mps": 0.0, "covariance": cov.tolist()})
    out, _, _ = compact_tracks(tracks)
    for track, shown in zip(tracks, out):
        values, vectors = np.linalg.eigh(np.array(track["covariance"])[:2, :2])
        major, minor, bearing = shown["ellipse_m"]
        assert major == pytest.approx(np.sqrt(values[1]), abs=0.051)
        assert minor == pytest.approx(np.sqrt(values[0]), abs=0.051)
        if values[1] - values[0] > 1e-3 * values[1]:  # a circle has no major axis
            expected = np.degrees(np.arctan2(vectors[0, 1], vectors[1, 1])) % 180.0
            assert min(abs(bearing - expected), 180.0 - abs(bearing - expected)) < 0.051


def test_ack_decoding_names_the_bad_field():
    ack = decode_ack(b'{"alert_id": "a1", "agency_id": "agency-a", "state": "dismissed", "operator": "x", "t": 5}')
    assert ack.state == "dismissed"
    with pytest.raises(AckError, match="state"):
        decode_ack(b'{"alert_id": "a1", "agency_id": "agency-a", "state": "maybe", "operator": "x", "t": 5}')
    with pytest.raises(AckError, match="not JSON"):
        decode_ack(b"{")


def test_https_and_wss_with_the_configured_certificate(tmp_path, demo_site):
    import ssl

    files = make_certificates(tmp_path)
    config = WebConfig(listen="127.0.0.1:0", tls_cert=files["server.crt"], tls_key=files["server.key"],
                       tokens=str(write_tokens(tmp_path)))
    store = AckStore(tmp_path / "acks.sqlite")
    server = WebServer(demo_site, config, acks=store).start()
    client_context = ssl.create_default_context(cafile=files["ca.crt"])

    async def visit():
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "lite", ssl=client_context) as response:
                page = await response.text()
            async with session.ws_connect(f"{server.url}ws?token={TOKENS['agency-b']}", ssl=client_context) as ws:
                hello = json.loads((await ws.receive(timeout=5)).data)
            try:  # without the certificate's CA the client refuses: it is really TLS, verified
                async with session.get(server.url, ssl=ssl.create_default_context()):
                    refused = False
            except aiohttp.ClientConnectorCertificateError:
                refused = True
        return page, hello, refused
    try:
        assert server.url.startswith("https://")
        page, hello, refused = asyncio.run(visit())
        assert "leaflet" in page and hello["type"] == "hello" and hello["view"] == "agency-b" and refused
    finally:
        server.stop()
        store.close()


def test_a_browser_gets_the_next_snapshot_only_once_it_has_drawn_the_last(server, short_log):
    """Flow control: a client that never reports a snapshot drawn gets one, then the next only after
    the timeout, however many the node hands over meanwhile; one that reports gets each."""
    from fusion.web import server as server_module

    snapshot = short_log[1].snapshots[-1].to_dict()

    async def scenario():
        loop = asyncio.get_running_loop()
        silent = loop.run_in_executor(None, lambda: collect(server.url, TOKENS["agency-b"], 3.0, draws=False))
        drawing = loop.run_in_executor(None, lambda: collect(server.url, TOKENS["agency-b"], 3.0))
        await asyncio.sleep(0.5)
        for i in range(10):
            server.on_snapshot(dict(snapshot, t=i))
            await asyncio.sleep(0.2)
        return await silent, await drawing

    silent, drawing = asyncio.run(scenario())
    assert server_module._DRAWN_TIMEOUT_S > 3.0
    assert [f["t"] for f in silent if f["type"] == "snapshot"] == [0]
    assert len([f for f in drawing if f["type"] == "snapshot"]) >= 8


def test_a_flood_of_alerts_reaches_a_browser_in_a_few_messages_in_order(server):
    """300 alerts handed over at once reach the browser as a few ``batch`` messages, not 300
    WebSocket messages (each costs the node's web thread a send and the page an event)."""
    alerts = [{"alert_id": f"flood-{i}", "t": 1000.0 + i, "recipients": ["agency-b"]} for i in range(300)]

    async def run() -> tuple[int, list[str]]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}ws?token={TOKENS['agency-b']}") as ws:
                assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
                server.on_alerts(alerts)
                messages, got = 0, []
                while len(got) < len(alerts):
                    message = await ws.receive(timeout=5)
                    messages += 1
                    got += [f["alert"]["alert_id"] for f in unbatch(json.loads(message.data)) if f["type"] == "alert"]
                return messages, got

    messages, got = asyncio.run(run())
    assert got == [a["alert_id"] for a in alerts]
    assert messages <= 3, messages


def test_snapshots_are_compacted_only_for_a_browser_ready_to_take_one(server, short_log, monkeypatch):
    """No browser, or one still drawing: the web thread does not compact the node's snapshots
    (2,000 tracks cost it ~10 ms each); the browser that is ready gets the newest."""
    from fusion.web import server as server_module

    compacted = []
    real = server_module.compact_tracks
    monkeypatch.setattr(server_module, "compact_tracks", lambda tracks: compacted.append(len(tracks)) or real(tracks))
    snapshot = short_log[1].snapshots[-1].to_dict()
    for i in range(3):
        server.on_snapshot(dict(snapshot, t=i))
        time.sleep(0.1)
    assert compacted == []  # nobody to show them to

    async def scenario():
        silent = asyncio.get_running_loop().run_in_executor(
            None, lambda: collect(server.url, TOKENS["agency-b"], 2.5, draws=False))
        await asyncio.sleep(0.5)  # its hello carries snapshot 2: compacted once
        for i in range(3, 8):
            server.on_snapshot(dict(snapshot, t=i))
            await asyncio.sleep(0.2)
        return await silent

    silent = asyncio.run(scenario())
    assert [f["snapshot"]["t"] for f in silent if f["type"] == "hello"] == [2]
    assert [f["t"] for f in silent if f["type"] == "snapshot"] == [3]  # then it never reports it drawn
    assert len(compacted) == 2, compacted
