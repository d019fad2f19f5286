"""``replay --web`` and ``demo --web``: a log played onto the map, driven from the page's controls."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from fusion.web.player import ReplayPlayer, serve_replay
from tests.broker import free_port
from tests.conftest import DEMO_SITE
from tests.test_web_browser import browser, offline_page, wait_until  # noqa: F401 (fixture)


@pytest.mark.browser
def test_replay_controls_from_the_page(browser, demo_site, short_log, tmp_path):  # noqa: F811
    log, expected = short_log
    stop = threading.Event()
    ready: list[str] = []
    thread = threading.Thread(target=serve_replay, args=(demo_site, log, "127.0.0.1:0"),
                              kwargs={"speed": 30.0, "on_ready": ready.append, "stop": stop,
                                      "acks": tmp_path / "acks.sqlite"}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not ready and time.monotonic() < deadline:
            time.sleep(0.05)
        blocked: list[str] = []
        page = offline_page(browser, blocked)
        page.goto(ready[0] + "lite")
        wait_until(page, "window.borderfusion.replay && window.borderfusion.replay.t > window.borderfusion.replay.t_start + 30", 20)
        assert page.locator("#replay").is_visible()
        wait_until(page, "window.borderfusion.tracks.length > 0", 20)
        # pause: data time stops
        page.locator("#replay-play").click()
        wait_until(page, "window.borderfusion.replay.playing === false", 5)
        paused_at = page.evaluate("window.borderfusion.replay.t")
        page.wait_for_timeout(800)
        assert page.evaluate("window.borderfusion.replay.t") == paused_at
        # play to the end at a higher speed: every alert of the log arrives
        page.select_option("#replay-speed", "100")
        wait_until(page, "window.borderfusion.replay.speed === 100", 5)
        page.locator("#replay-play").click()
        wait_until(page, "window.borderfusion.replay.playing === false && "
                         "window.borderfusion.replay.t === window.borderfusion.replay.t_end", 30)
        alerts = page.evaluate("window.borderfusion.alerts")
        assert sorted(a["alert_id"] for a in alerts) == sorted(a.alert_id for a in expected.alerts)
        # seek back to the start with the slider: the page forgets what came after
        start = page.evaluate("window.borderfusion.replay.t_start")
        page.evaluate("v => { const s = document.getElementById('replay-time'); s.value = v;"
                      " s.dispatchEvent(new Event('change')); }", start + 20)
        wait_until(page, f"window.borderfusion.replay.t < {start + 25}", 10)
        early = ReplayPlayer(demo_site, log, None, None).advance(start + 20).alerts  # what a fresh pipeline gives
        assert 0 < len(early) < len(expected.alerts)
        wait_until(page, f"window.borderfusion.alerts.length === {len(early)}", 10)
        shown = page.evaluate("window.borderfusion.alerts")
        assert sorted(a["alert_id"] for a in shown) == sorted(a.alert_id for a in early)
        assert all(a["raised_t"] <= start + 20 for a in shown)
        assert not blocked and not page.errors, (blocked, page.errors)
    finally:
        stop.set()
        thread.join(10)


def _serve(command: list[str], port: int, timeout_s: float = 240.0) -> tuple[int, str, str]:
    """Run a ``--web`` command, wait for its map, fetch its pages, stop it with SIGINT."""
    process = subprocess.Popen([sys.executable, "-m", "fusion.cli", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        page = ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/lite", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert "leaflet" in page, process.stderr.read() if process.poll() is not None else "no page"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        return process.returncode, out, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_replay_web_command_serves_and_stops_cleanly(short_log, tmp_path):
    from tests.broker import write_site

    log, _ = short_log
    port = free_port()
    site = write_site(tmp_path / "site", 1883, outbox=tmp_path / "outbox")
    code, out, err = _serve(["replay", str(log), "--config", str(site), "--web", f"127.0.0.1:{port}",
                             "--speed", "10"], port)
    assert code == 0, err
    assert f"http://127.0.0.1:{port}/" in out and "×10" in out
    assert (tmp_path / "outbox" / "edge-1-acks.sqlite").exists()  # acks where the live node keeps them


@pytest.mark.slow
def test_demo_web_runs_the_demo_then_serves_it(tmp_path):
    port = free_port()
    code, out, err = _serve(["demo", "--out", str(tmp_path / "demo"), "--duration", "60", "--web",
                             f"127.0.0.1:{port}"], port)
    assert code == 0, err
    assert "borderfusion demo" in out and f"http://127.0.0.1:{port}/" in out
    assert (tmp_path / "demo" / "map.png").exists() and (tmp_path / "demo" / "acks.sqlite").exists()


def test_bad_web_address_is_refused_with_exit_2(short_log):
    log, _ = short_log
    result = subprocess.run([sys.executable, "-m", "fusion.cli", "replay", str(log), "--config", str(DEMO_SITE),
                             "--web", "localhost"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "expected HOST:PORT" in result.stderr
    result = subprocess.run([sys.executable, "-m", "fusion.cli", "replay", str(log), "--config", str(DEMO_SITE),
                             "--web", "0.0.0.0:0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "web.tokens: needed" in result.stderr


def test_web_and_publish_together_are_refused(short_log):
    log, _ = short_log
    result = subprocess.run([sys.executable, "-m", "fusion.cli", "replay", str(log), "--config", str(DEMO_SITE),
                             "--web", "127.0.0.1:0", "--publish"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--web and --publish exclude each other" in result.stderr
