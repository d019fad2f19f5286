"""The map pages in a real browser: Debian's chromium driven by Playwright, offline.

Every request that does not go to 127.0.0.1 is aborted and recorded: the pages must
work (and try nothing) without the internet.  The assertions read the page's test
hook (``window.borderfusion``), plus one screenshot check that the map is drawn.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from urllib.parse import urlparse

import msgspec
import numpy as np
import pytest

from fusion.config import WebConfig
from fusion.web import AckStore, WebServer
from tests.test_web import TOKENS, write_tokens

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # no GPU here: WebGL (for MapLibre) through the SwiftShader software renderer
                 "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (tests/run.sh installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # in the test extra

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def offline_page(browser, blocked: list[str]):
    """A new page whose requests anywhere but loopback are aborted (and listed in ``blocked``)."""
    page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()
    page.route("**/*", route)
    return page


def wait_until(page, expression: str, timeout_s: float = 10.0):
    """Poll ``expression`` in the page until truthy (page.evaluate, which the page's CSP allows;
    Playwright's wait_for_function evaluates strings with eval, which the CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {expression}")
        time.sleep(0.05)


def serve(tmp_path, site, tokens: bool):
    config = WebConfig(listen="127.0.0.1:0", tokens=str(write_tokens(tmp_path)) if tokens else None)
    return WebServer(site, config, acks=AckStore(tmp_path / "acks.sqlite")).start()


@pytest.fixture
def open_server(tmp_path, demo_site, short_log):
    _, expected = short_log
    server = serve(tmp_path, demo_site, tokens=False)
    server.on_alerts([a.to_dict() for a in expected.alerts])
    busiest = max(expected.snapshots, key=lambda s: len(s.estimates))
    server.on_snapshot(busiest.to_dict())
    server.on_status({"node_id": "edge-1", "state": "online", "lag_s": 0.2, "counters": {"received": 5, "shed": 0}})
    yield server, busiest.to_dict(), [a.to_dict() for a in expected.alerts]
    server.stop()


def _map_pixels(page) -> np.ndarray:
    from PIL import Image

    shot = page.screenshot(clip={"x": 0, "y": 0, "width": 900, "height": 700})
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))


@pytest.mark.parametrize("path", ["", "lite"])
def test_the_page_shows_the_feed_offline(browser, open_server, path):
    server, snapshot, alerts = open_server
    blocked: list[str] = []
    page = offline_page(browser, blocked)
    page.goto(server.url + path)
    wait_until(page, "window.borderfusion && window.borderfusion.ready && window.borderfusion.tracks.length > 0", 20)
    tracks = page.evaluate("window.borderfusion.tracks")
    assert sorted(t["track_id"] for t in tracks) == sorted(t["track_id"] for t in snapshot["tracks"])
    shown = page.evaluate("window.borderfusion.alerts")
    assert [a["alert_id"] for a in shown] == [a["alert_id"] for a in sorted(alerts, key=lambda a: -a["t"])][:len(shown)]
    assert len(shown) == len(alerts)
    status = page.evaluate("window.borderfusion.status")
    assert status["connected"] and status["state"] == "online" and status["lag_s"] == 0.2
    # the list: newest first, coloured by severity
    first = page.locator("#alerts li").first
    assert first.get_attribute("data-alert-id") == shown[0]["alert_id"]
    assert "rgb(192, 57, 43)" in first.evaluate("e => getComputedStyle(e).borderLeftColor") or shown[0]["severity"] != "high"
    # a live update arrives
    moved = dict(snapshot, t=snapshot["t"] + 1, tracks=snapshot["tracks"][:1])
    server.on_snapshot(moved)
    wait_until(page, "window.borderfusion.tracks.length === 1", 5)
    # click an alert: the map flies to its track (or where it was raised)
    wait_until(page, "window.borderfusionMap && window.borderfusionMap.loaded", 20)
    target = shown[-1]
    page.locator(f"#alerts li[data-alert-id='{target['alert_id']}']").click()
    page.wait_for_timeout(2500)
    lon, lat = page.evaluate("window.borderfusionMap.center")
    track = next((t for t in moved["tracks"] if t["track_id"] == target["track_id"]), target)
    assert abs(lon - track["lon"]) < 2e-3 and abs(lat - track["lat"]) < 2e-3
    # drawn: the map area is not one flat colour (jurisdictions, coverage, symbols)
    pixels = _map_pixels(page)
    colours = np.unique(pixels.reshape(-1, 3) // 8, axis=0)
    assert len(colours) > 20, f"the map looks blank ({len(colours)} colours)"
    assert not blocked, f"the page tried to reach outside: {blocked}"
    assert not page.errors, page.errors


def test_an_ack_clicked_in_one_browser_shows_in_another_of_the_same_agency(browser, tmp_path, demo_site, short_log):
    _, expected = short_log
    server = serve(tmp_path, demo_site, tokens=True)
    try:
        alerts = [a.to_dict() for a in expected.alerts]
        server.on_alerts(alerts)
        time.sleep(0.2)
        blocked: list[str] = []
        desk1, desk2, other = (offline_page(browser, blocked) for _ in range(3))
        for page, agency in ((desk1, "agency-b"), (desk2, "agency-b"), (other, "agency-a-mil")):
            page.goto(f"{server.url}lite?token={TOKENS[agency]}")
            wait_until(page, "window.borderfusion.ready", 20)
        mine = desk1.evaluate("window.borderfusion.alerts")
        assert mine and all("agency-b" in a["recipients"] for a in mine)
        assert all("agency-a-mil" in a["recipients"] for a in other.evaluate("window.borderfusion.alerts"))
        alert_id = mine[0]["alert_id"]
        desk1.locator(f"#alerts li[data-alert-id='{alert_id}'] button.ack-acknowledged").click()
        wait_until(desk2, f"window.borderfusion.alerts.find(a => a.alert_id === '{alert_id}').ack !== null", 5)
        ack = desk2.evaluate(f"window.borderfusion.alerts.find(a => a.alert_id === '{alert_id}').ack")
        assert ack["state"] == "acknowledged" and ack["operator"] == "desk-agency-b" and ack["agency_id"] == "agency-b"
        assert "acknowledged by desk-agency-b" in desk2.locator(f"#alerts li[data-alert-id='{alert_id}']").inner_text()
        other.wait_for_timeout(500)
        assert all(a["ack"] is None for a in other.evaluate("window.borderfusion.alerts"))
        assert not blocked
    finally:
        server.stop()


def synthetic_tracks(n: int, t: float, rng: np.random.Generator, base: np.ndarray) -> list[dict]:
    """``n`` interface §3.1 tracks spread over the demo site, moving 1.5 m/s east."""
    covariance = np.diag([100.0, 64.0, 1.0, 1.0]).tolist()
    east = base[:, 0] + 1.5 * t
    lat = 47.0 + base[:, 1] / 110_540.0
    lon = 8.0 + east / (111_320.0 * np.cos(np.radians(47.0)))
    classes = ("person", "vehicle", "animal", "uav", "unknown")
    return [{"track_id": f"edge-1-{i}", "status": "coasting" if i % 10 == 0 else "confirmed", "lat": float(lat[i]),
             "lon": float(lon[i]), "east_m": float(east[i]), "north_m": float(base[i, 1]), "vel_east_mps": 1.5,
             "vel_north_mps": 0.0, "speed_mps": 1.5, "heading_deg": 90.0, "position_sigma_m": 10.0,
             "covariance": covariance, "classification": {classes[i % 5]: 0.9}, "jurisdiction": "country-a",
             "sensors": ["radar-n1"], "first_seen": 0.0, "last_update": t} for i in range(n)]


def _symbols_in_place(page, tracks: list[dict], style: dict) -> tuple[int, int]:
    """(tracks on screen and clear of others, those whose class colour is within 2 px of where MapLibre
    projects them)."""
    from PIL import ImageColor

    pixels = _map_pixels(page).astype(int)
    height, width, _ = pixels.shape
    where = np.array([page.evaluate(f"window.borderfusionMap.project({t['lon']}, {t['lat']})") for t in tracks])
    on_screen = in_place = 0
    for t, (x, y), gaps in zip(tracks, np.round(where).astype(int), np.hypot(*(where[:, None] - where[None]).T)):
        if not (4 <= x < width - 8 and 4 <= y < height - 4) or t["status"] == "coasting" or np.sort(gaps)[1] < 20:
            continue
        on_screen += 1
        colour = np.array(ImageColor.getrgb(style[next(iter(t["classification"]))]["colour"]))
        near = pixels[y - 2:y + 3, x - 2:x + 7].reshape(-1, 3)  # a ring's centre is white: look right too
        in_place += bool(np.any(np.abs(near - colour).max(axis=1) <= 12))
    return on_screen, in_place


def test_the_map_draws_each_track_where_the_map_puts_it_and_its_id_when_zoomed_in(browser, tmp_path, demo_site):
    """The MapLibre page draws the tracks on a canvas over the map, not as map layers: each class
    symbol must sit where MapLibre projects the track, at the site's zoom, turned and zoomed in;
    ids and (small) ellipses only when zoomed in."""
    server = serve(tmp_path, demo_site, tokens=False)
    rng = np.random.default_rng(2)
    base = np.column_stack([rng.uniform(-5000, 5000, 30), rng.uniform(-4000, 4000, 30)])
    tracks = synthetic_tracks(30, 0.0, rng, base)
    try:
        page = offline_page(browser, [])
        page.goto(server.url)
        wait_until(page, "window.borderfusion.ready && window.borderfusionMap.loaded", 20)
        lon, lat = page.evaluate("window.borderfusionMap.center")
        for t, (d_lon, d_lat) in zip(tracks[:10], rng.uniform(-0.002, 0.002, (10, 2))):  # some near the centre
            t["lon"], t["lat"] = float(lon + d_lon), float(lat + d_lat)
        server.on_snapshot({"node_id": "edge-1", "t": 0.0, "tracks": tracks})
        wait_until(page, "window.borderfusion.tracks.length === 30", 5)
        page.wait_for_timeout(300)
        style = page.evaluate("import('/static/symbols.js').then((m) => m.CLASS_STYLE)")
        drawn = page.evaluate("window.borderfusionMap.overlay")
        on_screen, in_place = _symbols_in_place(page, tracks, style)
        assert on_screen >= 12 and in_place == on_screen, (on_screen, in_place)
        assert drawn["symbols"] >= on_screen and drawn["labels"] == 0 and drawn["ellipses"] == 0, drawn
        # alert markers are drawn on the canvas too: a high alert is a red disc where the map puts it
        where = np.array([page.evaluate(f"window.borderfusionMap.project({t['lon']}, {t['lat']})") for t in tracks])
        clear = []
        for d_lon, d_lat in rng.uniform(-0.03, 0.03, (200, 2)):
            x, y = page.evaluate(f"window.borderfusionMap.project({lon + d_lon}, {lat + d_lat})")
            if 20 < x < 880 and 20 < y < 680 and np.hypot(*(where - [x, y]).T).min() > 30 and len(clear) < 3:
                clear.append((float(lon + d_lon), float(lat + d_lat), round(x), round(y)))
        server.on_alerts([{"alert_id": f"a-{k}", "type": "zone_entry", "severity": "high", "t": 1.0 + k,
                           "time": "2026-01-01T00:00:01Z", "track_id": "edge-1-1", "lat": a_lat, "lon": a_lon,
                           "recipients": ["agency-b"], "jurisdiction": "country-a"}
                          for k, (a_lon, a_lat, _, _) in enumerate(clear)])
        wait_until(page, "window.borderfusion.alerts.length === 3", 5)
        page.wait_for_timeout(1300)  # the page redraws its alerts at most once a second
        pixels = _map_pixels(page).astype(int)
        assert len(clear) == 3 and page.evaluate("window.borderfusionMap.overlay")["alerts"] == 3
        for _, _, x, y in clear:
            r, g, b = pixels[y, x]
            assert r - g > 60 and r - b > 60, (x, y, pixels[y, x])
        # turned (shift + arrow keys) and zoomed in (+): the symbols follow, ids and ellipses appear
        page.mouse.click(300, 300)
        for key in ["Shift+ArrowLeft"] * 3 + ["Equal"] * 4:
            page.keyboard.press(key)
            page.wait_for_timeout(100)
            wait_until(page, "!window.borderfusionMap.moving", 10)
        page.wait_for_timeout(300)
        assert page.evaluate("window.borderfusionMap.zoom") >= 15 and abs(page.evaluate("window.borderfusionMap.bearing")) > 10
        drawn = page.evaluate("window.borderfusionMap.overlay")
        on_screen, in_place = _symbols_in_place(page, tracks, style)
        assert on_screen >= 4 and in_place == on_screen, (on_screen, in_place)
        assert drawn["labels"] == drawn["symbols"] >= on_screen and drawn["ellipses"] >= on_screen, drawn
        assert not page.errors, page.errors
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("path,process", [("", False), ("lite", False), ("", True)])
def test_2000_tracks_at_1_hz_are_on_the_page_within_1_s(browser, tmp_path, demo_site, path, process):
    """The goal of the operator picture: each snapshot drawn within 1 s of the node handing it over
    (``process``: through the live node's map process, handed over as JSON)."""
    if process:
        from fusion.web.process import MapProcess

        server = MapProcess(demo_site, WebConfig(listen="127.0.0.1:0"), acks=tmp_path / "acks.sqlite").start()
    else:
        server = serve(tmp_path, demo_site, tokens=False)
    rng = np.random.default_rng(0)
    base = np.column_stack([rng.uniform(-8000, 8000, 2000), rng.uniform(-7000, 7000, 2000)])
    try:
        page = offline_page(browser, [])
        page.goto(server.url + path)
        wait_until(page, "window.borderfusion.ready", 20)
        delays: dict[float, float] = {}
        for second in range(12):
            started = time.monotonic()
            snapshot = {"node_id": "edge-1", "t": float(second), "tracks": synthetic_tracks(2000, second, rng, base)}
            if process:
                server.on_snapshot_json(msgspec.json.encode(snapshot))
            else:
                server.on_snapshot(snapshot)
            while time.monotonic() - started < 1.0:
                s = page.evaluate("window.borderfusion.status")
                if s["snapshot_t"] is not None and s["snapshot_drawn"] and s["snapshot_t"] not in delays:
                    delays[s["snapshot_t"]] = s["snapshot_drawn"] - s["snapshot_produced"]
                time.sleep(0.02)
        assert page.evaluate("window.borderfusion.tracks.length") == 2000
        # the page's own main-thread ms per snapshot it took (the hook web_latency --page-cost reads)
        costs = {c["t"]: c for c in page.evaluate("window.borderfusion.costs")}
        assert set(delays) <= set(costs) and all(costs[t]["tracks"] == 2000 for t in delays), costs.keys()
        assert all(0 <= c[key] < 1000 for c in costs.values() for key in ("parse_ms", "state_ms", "view_ms")), costs
        s = page.evaluate("window.borderfusion.status")  # the hook splits the delay: node's share, then the page's
        assert s["snapshot_produced"] <= s["snapshot_sent"] <= s["snapshot_received"] + 0.002
        assert s["snapshot_received"] <= s["snapshot_drawn"]
        steady = [d for t, d in sorted(delays.items()) if t >= 2]  # after the page's first layout
        print(f"\n2000 tracks at 1 Hz, page /{path}: drawn {len(delays)} of 12 snapshots; delay after hand-over "
              f"median {np.median(steady):.3f} s, max {max(steady):.3f} s")
        assert len(steady) >= 8, delays  # a page that falls behind skips snapshots
        # measured on 2 shared cores, software WebGL: /lite median ~0.06 s, max ~0.07 s; / (MapLibre, its
        # tracks on a 2-D canvas over the map) median ~0.03 s, max ~0.09 s (as GeoJSON layers it was
        # ~0.5 s and ~1.2 s); both draw in the page's thread, so a busy machine shows here
        assert np.median(steady) < 1.0 and max(steady) < 2.0, steady
    finally:
        server.close()


def write_basemap(path: Path, tile_type: str = "PNG", zooms=range(9, 15)) -> Path:
    """A raster PMTiles file of plain magenta tiles over the demo site (the ``pmtiles`` writer, test extra)."""
    from PIL import Image
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    png = io.BytesIO()
    Image.new("RGB", (256, 256), (255, 0, 255)).save(png, format="PNG")
    west, south, east, north = 7.85, 46.90, 8.20, 47.12

    def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
        n = 2 ** z
        y = (1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n
        return int((lon + 180) / 360 * n), int(y)

    tiles = {}
    for z in zooms:
        (x0, y0), (x1, y1) = tile_xy(west, north, z), tile_xy(east, south, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                tiles[zxy_to_tileid(z, x, y)] = png.getvalue()
    with open(path, "wb") as handle:
        writer = Writer(handle)
        for tile_id in sorted(tiles):
            writer.write_tile(tile_id, tiles[tile_id])
        writer.finalize({"tile_type": getattr(TileType, tile_type), "tile_compression": Compression.NONE,
                         "min_zoom": min(zooms), "max_zoom": max(zooms), "min_lon_e7": int(west * 1e7),
                         "min_lat_e7": int(south * 1e7), "max_lon_e7": int(east * 1e7), "max_lat_e7": int(north * 1e7),
                         "center_zoom": 12, "center_lon_e7": int(8.0 * 1e7), "center_lat_e7": int(47.0 * 1e7)}, {})
    return path


@pytest.mark.parametrize("path", ["", "lite"])
def test_a_local_pmtiles_basemap_is_drawn_under_the_map(browser, tmp_path, demo_site, path):
    basemap = write_basemap(tmp_path / "valley.pmtiles")
    config = WebConfig(listen="127.0.0.1:0", basemap=str(basemap))
    server = WebServer(demo_site, config, acks=tmp_path / "acks.sqlite").start()
    try:
        blocked: list[str] = []
        page = offline_page(browser, blocked)
        page.goto(server.url + path)
        wait_until(page, "window.borderfusion.ready && window.borderfusionMap.loaded", 20)
        page.wait_for_timeout(3000)  # tiles are read with HTTP ranges and decoded asynchronously
        pixels = _map_pixels(page).reshape(-1, 3).astype(int)
        magenta = (pixels[:, 0] > 180) & (pixels[:, 1] < 120) & (pixels[:, 2] > 180)
        assert magenta.mean() > 0.3, f"the basemap is not drawn ({magenta.mean():.1%} of the map is its colour)"
        assert not blocked and not page.errors, (blocked, page.errors)
    finally:
        server.close()


def test_a_basemap_that_is_not_raster_pmtiles_is_refused(tmp_path, demo_site):
    from fusion.config import ConfigError

    vector = write_basemap(tmp_path / "vector.pmtiles", tile_type="MVT", zooms=range(9, 10))
    with pytest.raises(ConfigError, match=r"web\.basemap: .*vector \(MVT\) tiles; the map draws raster basemaps only"):
        WebServer(demo_site, WebConfig(listen="127.0.0.1:0", basemap=str(vector)), acks=tmp_path / "a.sqlite")
    (tmp_path / "not.pmtiles").write_bytes(b"hello")
    with pytest.raises(ConfigError, match=r"web\.basemap: .* is not a PMTiles version 3 file"):
        WebServer(demo_site, WebConfig(listen="127.0.0.1:0", basemap=str(tmp_path / "not.pmtiles")),
                  acks=tmp_path / "a.sqlite")
    assert not (tmp_path / "a.sqlite").exists()


def test_an_alert_flood_does_not_hold_up_the_snapshots(browser, tmp_path, demo_site):
    """700 alerts/s for 4 s (a busy border) while 200-track snapshots arrive at 1 Hz: the page
    redraws its list in batches, not per alert, so it still takes each snapshot within 1 s; it
    lists the newest 200 and holds the newest 1,000 (the node keeps them all)."""
    server = serve(tmp_path, demo_site, tokens=False)
    rng = np.random.default_rng(1)
    base = np.column_stack([rng.uniform(-8000, 8000, 200), rng.uniform(-7000, 7000, 200)])
    try:
        page = offline_page(browser, [])
        page.goto(server.url + "lite")
        wait_until(page, "window.borderfusion.ready", 20)
        delays: dict[float, float] = {}
        sent, flood_started = 0, time.monotonic()
        for second in range(5):
            started = time.monotonic()
            tracks = synthetic_tracks(200, second, rng, base)
            server.on_snapshot({"node_id": "edge-1", "t": float(second), "tracks": tracks})
            while time.monotonic() - started < 1.0:
                due = min(2800, int(700 * (time.monotonic() - flood_started)))  # 700 alerts/s for 4 s
                server.on_alerts([{"alert_id": f"flood-{i}", "type": "border_crossing", "severity": "high",
                                   "t": 1000.0 + i, "time": "2026-01-01T00:00:00Z", "track_id": "edge-1-1",
                                   "lat": 47.0, "lon": 8.0, "recipients": ["agency-b"], "jurisdiction": "country-a"}
                                  for i in range(sent, due)])
                sent = max(sent, due)
                s = page.evaluate("window.borderfusion.status")
                if s["snapshot_t"] is not None and s["snapshot_t"] not in delays:
                    delays[s["snapshot_t"]] = s["snapshot_drawn"] - s["snapshot_produced"]
                time.sleep(0.05)
        # as the 2,000-track test: median within 1 s, none beyond 2 s (a shared machine has its moments);
        # a page that redraws per alert falls 3–6 s behind here
        assert sent == 2800 and len(delays) >= 4, (sent, delays)
        assert np.median(list(delays.values())) < 1.0 and max(delays.values()) < 2.0, delays
        wait_until(page, f"window.borderfusion.alerts.length === 1000 && "
                         f"window.borderfusion.alerts[0].alert_id === 'flood-{sent - 1}'", 10)
        assert page.locator("#alerts li.alert").count() == 200
        assert page.locator("#alerts li.alert-more").inner_text() == "… 800 older alerts"
        assert page.locator("#alerts li.alert").first.get_attribute("data-alert-id") == f"flood-{sent - 1}"
        assert not page.errors, page.errors
    finally:
        server.stop()
