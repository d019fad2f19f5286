"""Does the live map cost the node its alert latency?  ``live_latency``'s node with two browsers on its map.

One invocation alternates runs of the same node (``borderfusion run`` over a real
Mosquitto, ``benchmarks/live_latency.py``'s site, radars and publisher: ~2,000 vehicles
crossing a border, up to 20,000 detections/s, track snapshots at 1 Hz) with ``[web]`` enabled
and a tokens file, in three conditions:

* ``none``: no viewer connected;
* ``browsers``: two headless Chromium instances on the map (``--page``: MapLibre, or
  ``lite``), one per agency, ``agency-a`` and ``agency-b``; each sees the ~2,000 tracks,
  which all lie within the 2 km margin of its jurisdiction;
* ``readers``: the same two agencies' feeds read by bare WebSocket clients that parse
  every frame and report each snapshot drawn at once.  The node's map server does all
  it does for two fast viewers, the viewers cost next to nothing: set against
  ``browsers`` it tells the web server's effect on the node from that of two software-
  rendering browsers sharing its machine.

Each round runs every condition once (``--conditions``, ``none`` first; ``--pairs``
rounds), so a change in the shared machine's load falls on all; each condition is
summarised by the median over its runs.

Measured per run (one JSON line each):

* alert latency p50/p99/max, as ``live_latency`` measures it (an agency subscriber's
  receive time − the alert's ``raised_t``);
* ``node_cpu_per_s``: the node process's CPU (all threads) per second of traffic, and
  ``web_cpu_per_s``: that of its map server alone — its process (``fusion.web.process``,
  the node's child, named ``bf-web``), or, in a node that runs it as a thread, that thread
  (also named ``bf-web``) — so the web server's own cost is read directly and as the
  difference between conditions;
* the browsers' lag, per snapshot each page took: ``received − produced`` (the page
  holds the snapshot: parsed, in its state) and ``drawn − produced`` (handed to the map
  library), where ``produced`` is the node's wall clock when it handed the snapshot to
  its map server and ``received``/``drawn`` are the page's (``window.borderfusion.status``,
  the test hook the 2,000-track browser test reads; same machine, same clock), plus
  ``drawn − t`` from the snapshot's own time, and ``sent − produced`` (``sent``: when the
  map server made the frame, which it does only once the page has drawn the snapshot
  before: this is the node's work plus the wait for a busy page, and ``received − sent``
  the network and the page's queue); and how many snapshots each page took
  (it skips to the newest when it is slower than 1 Hz: flow control, never a backlog);
* ``viewers_cpu_per_s``: what the two browsers (all their processes), or readers, used.

CPU figures are per second of traffic, the 6 s after it included (as ``live_latency``).

The summary line gives the medians per condition, the web server's cost, the ratio of
the median p99s (viewers / none; the issue's goal: ≤ 1.10) and, less sensitive to the
machine's load drifting during the invocation, the ratio within each round.

How the viewers are kept off the node's CPU, and why that is fair: the browsers stand
for operator workstations, which are never the edge box; on the real system they use
none of the node's CPU, only its network.  Here they must share a 2-core machine, so
they run in a child process started as
``setpriv --bounding-set -sys_nice --inh-caps -sys_nice nice -n 19 taskset -c BROWSER_CORE``:

* nice 19: the scheduler gives a nice-0 task ~70 times the share of a nice-19 one when
  both want a core, and a waking node thread preempts a browser thread at once;
* without CAP_SYS_NICE: as root, Chromium would raise its display threads to nice −8
  (seen here); without the capability it cannot go below 19;
* the scheduling groups (``/proc/PID/autogroup``, one per session) of the child and of
  Chromium (Playwright starts it in a session of its own) are set to nice 19 too: with
  autogroups on (as here) groups compete as equals whatever their tasks' nice values;
* ``taskset``: one core only, so whatever software WebGL does the other core is never
  theirs.

Chromium's own processes inherit all of it.  The node is neither pinned nor reniced.
What stays shared is real: the node's web thread, its sockets and the kernel's loopback
work — all the cost the node would carry with remote browsers.  The price: the browsers
get only the CPU nobody else wants, so on a busy shared machine their lag measures that
starvation more than the map (``viewers_cpu_per_s`` shows what they got); the pages'
own speed with a core of their own is ``tests/test_web_browser.py``'s 2,000-track test.
The readers run the same way.
Chromium runs with the browser tests' flags (``--use-gl=swiftshader``: no GPU here) and
its default frame scheduling: ``--disable-gpu-vsync``/``--disable-frame-rate-limit``
would let it draw as fast as it can, which costs more CPU, not less, and MapLibre only
draws when data or the view changes.  What this cannot isolate: caches and memory
bandwidth, and the other engineers' jobs on the machine (note ``load`` in each line).

    python benchmarks/web_latency.py [--pairs 3] [--seconds 20] [--targets 2000] [--page ''|lite]
                                     [--conditions none,readers,browsers] [--node-cores 0] [--stall]
                                     [--page-cost]

``--node-cores 0`` pins everything but the viewers to core 0 (the viewers keep the last
core): the browsers then stand for remote workstations exactly, using none of the node's
CPU, and what is left between the conditions is the map's own cost (its process shares
the node's core) and the loopback traffic.  The node then has one core in every condition.

``--stall``: the map's hold on the node's own thread, without the broker, the tracker, the
publisher or the browsers' CPU (what the end-to-end runs cannot separate on a busy shared
machine).  A loop thread stands for the node's: an item of ~0.1 ms of pure-Python work falls
due every millisecond (as messages arrive; the loop idles ~90 % of the time, as the node
does) and it records each item's latency (done − due), and once a second hands a pre-encoded
2,000-track snapshot (the demo site's area, two agencies' tokens, two bare readers on the
feed as in ``readers``) to the map as the node does.  Conditions, alternated per round:
``none`` (no map), ``thread`` (the map server as a thread of this process, handed the
snapshot decoded to a dict in the loop: the node before the map had a process of its own),
``thread_json`` (the same thread handed the JSON bytes, decoded by the map thread: what
sharing the interpreter costs by itself), ``process``
(:class:`fusion.web.process.MapProcess`, handed the JSON bytes: the node now).
An item late by more than its own ~0.1 ms waited for the loop (the hand-over), the GIL or
the CPU: p99/max and the items over 2 ms and 5 ms tell how much the map held the loop up.

``--page-cost``: what one page costs its machine per snapshot, without the node: one headless
Chromium (as the browser tests run it, not niced) on an in-process map server fed the 2,000-track
browser test's synthetic tracks at 1 Hz and ``--alerts-per-s`` alerts. One JSON line per run (``--pairs`` runs): the page's own
main-thread ms per snapshot, median, from its ``window.borderfusion.costs`` hook (``parse_ms``
JSON.parse, ``state_ms`` tracks and trails, then the view's ``build_ms``/``draw_ms`` — or, for a
page that hands GeoJSON to MapLibre, ``setdata_ms``); MapLibre's own frames (``paint``: frames
per second and main-thread ms, timed with ``?profile=1``); the renderer's main thread per second
(Chrome DevTools ``Performance.getMetrics``: ``TaskDuration`` is all its tasks); and the CPU per
second of every Chromium process and thread (``/proc``: ``gpu-process`` is where software WebGL
draws, ``renderer/DedicatedWorker`` MapLibre's tiling), after a few seconds' warm-up.

Measured with it (2,000 tracks, 170 alerts/s, load ~1, this 2-core machine): with the tracks
and alert markers as MapLibre GeoJSON layers a page cost its machine 0.91 CPU-s per second
(0.65–0.78 without alerts): JSON.parse ~1.3–2 ms, state ~0.7 ms, building the GeoJSON ~0.5 ms
and setData ~0.1 ms a snapshot, but each snapshot cost MapLibre four frames (each GeoJSON
source's data parsed, its tiles cut, the symbols placed again) and each frame ~50–100 ms of
software WebGL in the GPU process whatever changed (a frame of the background alone: ~48 ms),
plus ~0.08 s/s of tiling in its worker.  With both drawn on a 2-D canvas over the map
(``fusion/web/static/overlay.js``): 0.11 CPU-s per second (0.07 without alerts), no MapLibre
frame per snapshot, ~10 ms of the page's main thread per snapshot (parse ~1.3, state ~0.7,
arrays ~2, drawing ~4–6).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_latency import PER_RADAR, PREFIX, cpu_seconds, mosquitto, percentiles, publisher, write_site  # noqa: E402

AGENCIES = ("agency-a", "agency-b")
WEB_THREAD = "bf-web"  # the map server thread's name (fusion.web.server), in a node that has one
POLL_S = 0.1  # how often the browser child reads each page's status


# -- the browsers (a child process, niced and pinned) -------------------------------------
def browser_child(urls: list[str]) -> None:
    """Open each URL in its own headless Chromium; print ``ready``; sample until ``stop`` on stdin;
    print one JSON list per page of ``{t, produced, sent, received, drawn}`` per snapshot it took."""
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS, offline_page, wait_until

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    with sync_playwright() as playwright:
        browsers = [playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS) for _ in urls]
        nice_groups(os.getpid())
        blocked: list[str] = []
        pages = [offline_page(browser, blocked) for browser in browsers]
        for page, url in zip(pages, urls):
            page.goto(url)
            wait_until(page, "window.borderfusion && window.borderfusion.ready", 60)
        nice_groups(os.getpid())  # and the renderers started since
        print("ready", flush=True)
        cpu0, started = viewer_cpu(os.getpid()), time.monotonic()
        seen: list[dict[float, dict]] = [{} for _ in pages]
        most_tracks = [0 for _ in pages]
        last_count = time.monotonic()
        while not stop.is_set():
            for page, mine in zip(pages, seen):
                s = page.evaluate("window.borderfusion.status")
                if s["snapshot_t"] is not None and s["snapshot_drawn"] and s["snapshot_t"] not in mine:
                    mine[s["snapshot_t"]] = {"t": s["snapshot_t"], "produced": s["snapshot_produced"],
                                             "sent": s["snapshot_sent"], "received": s["snapshot_received"],
                                             "drawn": s["snapshot_drawn"]}
            if time.monotonic() - last_count > 5:  # the page holds the tracks (copies them: not every poll)
                last_count = time.monotonic()
                most_tracks = [max(m, p.evaluate("window.borderfusion.tracks.length"))
                               for m, p in zip(most_tracks, pages)]
            time.sleep(POLL_S)
        cpu = {key: round((value - cpu0.get(key, 0.0)) / (time.monotonic() - started), 3)
               for key, value in viewer_cpu(os.getpid()).items()}
        errors = [e for p in pages for e in p.errors]
        costs = [c for p in pages for c in p.evaluate("window.borderfusion.costs || []")]
        for browser in browsers:
            browser.close()
    # the page's own main-thread ms per snapshot (its newest 120 snapshots): JSON.parse + state + the map's share
    page_ms = [c["parse_ms"] + c["state_ms"] + c["view_ms"] for c in costs]
    parts = {key: round(statistics.median(c[key] for c in costs if key in c), 2)
             for key in ("parse_ms", "state_ms", "build_ms", "draw_ms", "setdata_ms") if any(key in c for c in costs)}
    print(json.dumps({"snapshots": [list(m.values()) for m in seen], "tracks": most_tracks,
                      "blocked": blocked, "errors": errors,
                      "page_ms_per_snapshot_p50": round(statistics.median(page_ms), 2) if page_ms else None,
                      "page_ms_per_snapshot_max": round(max(page_ms), 2) if page_ms else None,
                      "page_ms_parts_p50": parts,
                      "cpu_per_s_by_thread": dict(sorted(((k, v) for k, v in cpu.items() if v >= 0.005),
                                                         key=lambda kv: -kv[1]))}), flush=True)


def reader_child(urls: list[str]) -> None:
    """As :func:`browser_child`, but each URL's feed read by a bare WebSocket client that parses every
    frame and reports each snapshot drawn at once: the node's map server does all its work for two
    viewers while the viewers themselves cost next to nothing."""
    import asyncio

    import aiohttp

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    seen: list[dict[float, dict]] = [{} for _ in urls]
    most_tracks = [0 for _ in urls]
    ready = [asyncio.Event() for _ in urls]

    async def read(k: int, url: str, session: aiohttp.ClientSession) -> None:
        feed = url.replace("http://", "ws://").replace("/lite?", "/?").replace("/?", "/ws?")
        async with session.ws_connect(feed, max_msg_size=0) as ws:
            while not stop.is_set():
                try:
                    message = await ws.receive(timeout=0.2)
                except asyncio.TimeoutError:
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                received = time.time()
                frame = json.loads(message.data)
                snapshot = frame.get("snapshot") if frame["type"] == "hello" else frame
                ready[k].set()
                if snapshot and snapshot.get("type") == "snapshot":
                    seen[k][snapshot["t"]] = {"t": snapshot["t"], "produced": snapshot["produced"],
                                              "sent": snapshot["sent"], "received": received, "drawn": received}
                    most_tracks[k] = max(most_tracks[k], len(snapshot["tracks"]))
                    await ws.send_str(json.dumps({"type": "drawn", "t": snapshot["t"]}))

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.ensure_future(read(k, url, session)) for k, url in enumerate(urls)]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 60)
            print("ready", flush=True)
            await asyncio.gather(*tasks)

    asyncio.run(main())
    print(json.dumps({"snapshots": [list(m.values()) for m in seen], "tracks": most_tracks,
                      "blocked": [], "errors": []}), flush=True)


def process_tree(root_pid: int) -> set[int]:
    """``root_pid`` and all its living descendants."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, grew = {root_pid}, True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        grew, tree = bool(more), tree | more
    return tree


def nice_groups(root_pid: int) -> None:
    """Make the scheduling group (autogroup: one per session) of every process of the tree nice 19.

    Playwright starts Chromium in a session of its own (a new autogroup, which competes
    with the node's group as an equal whatever its tasks' nice values), so the
    group's nice must be set too, not only the tasks'."""
    for pid in process_tree(root_pid):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text("19")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds (user + system) of ``root_pid`` and all its living descendants."""
    total = 0.0
    for pid in process_tree(root_pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def thread_cpu_seconds(pid: int, name: str) -> float | None:
    """CPU seconds of the thread of ``pid`` called ``name`` (None if there is none)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            if (task / "comm").read_text().strip() == name:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / 100.0
    return None


def map_cpu_seconds(node_pid: int) -> float | None:
    """CPU seconds of the node's map server: its child processes (the map process), or its ``bf-web``
    thread in a node that serves the map from a thread; None if it has neither."""
    children = process_tree(node_pid) - {node_pid}
    if children:
        return tree_cpu_seconds(node_pid) - cpu_seconds(node_pid)
    return thread_cpu_seconds(node_pid, WEB_THREAD)


@contextlib.contextmanager
def viewers(kind: str, urls: list[str], core: int):
    """The viewers' child (``kind``: browsers or readers) under ``nice -n 19 taskset -c core`` (see the
    module's docstring); yields (process, result dict filled on exit)."""
    command = ["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", "nice", "-n", "19",
               "taskset", "-c", str(core), sys.executable, __file__, f"--{kind}-child", *urls]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             start_new_session=True)
    result: dict = {}
    try:
        nice_groups(child.pid)
        line = child.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the browsers did not start (exit {child.wait()}): {line}")
        yield child, result
        child.stdin.write("stop\n")
        child.stdin.flush()
        result.update(json.loads(child.stdout.readline()))
        child.wait(30)
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(30)


# -- one run of the node --------------------------------------------------------------------
def write_web_site(directory: Path, broker_port: int, web_port: int, n_targets: int) -> tuple[Path, dict[str, str]]:
    """``live_latency``'s site plus ``[web]`` with a tokens file (one operator per agency)."""
    site = write_site(directory, broker_port, math.ceil(n_targets / PER_RADAR), 0.0)
    tokens = {agency: secrets.token_hex(16) for agency in AGENCIES}
    path = directory / "tokens.toml"
    path.write_text("".join(f'[[operator]]\ntoken = "{token}"\nagency = "{agency}"\nname = "desk-{agency}"\n\n'
                            for agency, token in tokens.items()))
    path.chmod(0o600)
    site.write_text(site.read_text() + f'\n[web]\nlisten = "127.0.0.1:{web_port}"\ntokens = "tokens.toml"\n')
    return site, tokens


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_once(condition: str, n_targets: int, seconds: float, page: str, core: int) -> dict:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp) / "broker") as port:
        tmp = Path(tmp)
        web_port = free_port()
        site, tokens = write_web_site(tmp / "site", port, web_port, n_targets)
        latencies: dict[str, float] = {}
        online = threading.Event()

        def on_message(c, u, m):
            now = time.time()
            body = json.loads(m.payload)
            if m.topic.startswith(f"{PREFIX}/status/"):
                if body.get("state") == "online":
                    online.set()
            else:
                latencies.setdefault(body["alert_id"], now - body["raised_t"])

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-agency", protocol=mqtt.MQTTv5)
        sub.on_message = on_message
        sub.on_connect = lambda c, *a: [c.subscribe(f"{PREFIX}/alerts/+", qos=1),
                                        c.subscribe(f"{PREFIX}/status/+", qos=1)]
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        node = subprocess.Popen([sys.executable, "-m", "fusion.cli", "run", "--config", str(site)], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "node.log", "w"))
        try:
            if not online.wait(120):
                raise RuntimeError(f"the node did not come online: {(tmp / 'node.log').read_text()}")
            urls = [f"http://127.0.0.1:{web_port}/{page}?token={tokens[a]}" for a in AGENCIES]
            attach = viewers(condition, urls, core) if condition != "none" else contextlib.nullcontext((None, {}))
            with attach as (child, seen):
                ready, stats = mp.Event(), mp.Queue()
                pub = mp.Process(target=publisher, args=(port, n_targets, seconds, ready, stats, False))
                cpu0, web0 = cpu_seconds(node.pid), map_cpu_seconds(node.pid)
                browser0 = tree_cpu_seconds(child.pid) if child else 0.0
                pub.start()
                sent = stats.get(timeout=seconds + 120)
                pub.join()
                time.sleep(6.0)  # the node catches up (as live_latency)
                cpu1, web1 = cpu_seconds(node.pid), map_cpu_seconds(node.pid)
                browser1 = tree_cpu_seconds(child.pid) if child else 0.0
        finally:
            node.terminate()
            node.communicate(timeout=60)
            sub.disconnect()
            sub.loop_stop()
    lat_ms = np.array(list(latencies.values())) * 1000.0
    out = {"bench": "web_latency", "condition": condition, "page": f"/{page}" if condition == "browsers" else None,
           "targets": n_targets, "seconds": seconds, "load_1min": round(load, 2),
           "sent_det_per_s": round(sent["sent_detections"] / sent["elapsed_s"]), "alerts": int(lat_ms.size),
           **percentiles("latency", lat_ms),
           "node_cpu_per_s": round((cpu1 - cpu0) / seconds, 3),
           "web_cpu_per_s": round((web1 - web0) / seconds, 3) if web0 is not None and web1 is not None else None,
           "publisher_late_ticks": sent["late_ticks"]}
    if condition != "none":
        snaps = [s for page_snaps in seen["snapshots"] for s in page_snaps]
        held = np.array([s["received"] - s["produced"] for s in snaps]) * 1000.0
        node_part = np.array([s["sent"] - s["produced"] for s in snaps]) * 1000.0
        drawn = np.array([s["drawn"] - s["produced"] for s in snaps]) * 1000.0
        from_t = np.array([s["drawn"] - s["t"] for s in snaps]) * 1000.0
        out.update({"viewers_cpu_per_s": round((browser1 - browser0) / seconds, 3),
                    "snapshots_taken": [len(p) for p in seen["snapshots"]], "tracks_on_page": seen["tracks"],
                    **percentiles("page_held_lag", held), **percentiles("page_drawn_lag", drawn),
                    **percentiles("node_sent_lag", node_part),
                    **percentiles("page_drawn_from_t", from_t),
                    "page_held_within_1s": round(float(np.mean(held <= 1000.0)), 3) if held.size else None,
                    "page_ms_per_snapshot_p50": seen.get("page_ms_per_snapshot_p50"),
                    "page_ms_per_snapshot_max": seen.get("page_ms_per_snapshot_max"),
                    "page_ms_parts_p50": seen.get("page_ms_parts_p50"),
                    "viewers_cpu_per_s_by_thread": seen.get("cpu_per_s_by_thread"),
                    "page_errors": seen["errors"][:3], "blocked_requests": len(seen["blocked"])})
    return out


# -- --stall: the map's hold on the loop thread, nothing else ----------------------------------
STALL_CONDITIONS = ("none", "thread", "thread_json", "process")
ITEMS_PER_S = 1000  # --stall: work items due per second (each ~0.1 ms: the loop idles ~90 % as the node does)


def _work_item() -> None:
    """~0.1 ms of pure-Python work (holds the GIL throughout, as decoding and tracking glue do)."""
    total = 0
    for i in range(1500):
        total += i * i


def stall_once(condition: str, n_targets: int, seconds: float, core: int) -> dict:
    """One run of ``--stall`` (see the module's docstring)."""
    import msgspec

    from fusion.config import load_site
    from fusion.web import AckStore, WebServer
    from fusion.web.process import MapProcess
    from fusion.web.sinks import hand_snapshot
    from tests.broker import write_site as write_demo_site
    from tests.test_web_browser import synthetic_tracks

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = write_demo_site(tmp / "site", 1883, outbox=tmp / "outbox")
        tokens = {agency: secrets.token_hex(16) for agency in AGENCIES}
        (tmp / "site" / "tokens.toml").write_text("".join(
            f'[[operator]]\ntoken = "{token}"\nagency = "{agency}"\n\n' for agency, token in tokens.items()))
        (tmp / "site" / "tokens.toml").chmod(0o600)
        path.write_text(path.read_text() + '\n[web]\nlisten = "127.0.0.1:0"\ntokens = "tokens.toml"\n')
        site = load_site(path)
        rng = np.random.default_rng(0)
        base = np.column_stack([rng.uniform(-8000, 8000, n_targets), rng.uniform(-7000, 7000, n_targets)])
        payloads = [msgspec.json.encode({"node_id": "edge-1", "t": float(t),
                                         "tracks": synthetic_tracks(n_targets, t, rng, base)})
                    for t in range(int(seconds) + 1)]
        server = None
        if condition in ("thread", "thread_json"):
            server = WebServer(site, site.config.web, acks=AckStore(tmp / "acks.sqlite")).start()
        elif condition == "process":
            server = MapProcess(site, site.config.web, acks=tmp / "acks.sqlite").start()
        try:
            urls = [f"{server.url}?token={tokens[a]}" for a in AGENCIES] if server else []
            attach = viewers("readers", urls, core) if server else contextlib.nullcontext((None, {}))
            with attach as (_, seen):
                late_ms: list[float] = []
                cpu0 = time.process_time()
                started = time.perf_counter()
                for t, payload in enumerate(payloads[:-1]):
                    if condition == "thread":
                        server.on_snapshot(msgspec.json.decode(payload))  # as the node did: decoded in its loop
                    elif server is not None:
                        hand_snapshot([server], payload)  # the JSON as it is (decoded by the map, if at all)
                    for k in range(ITEMS_PER_S):  # one item due every 1/ITEMS_PER_S s, as messages arrive
                        due = started + t + k / ITEMS_PER_S
                        wait = due - time.perf_counter()
                        if wait > 0:
                            time.sleep(wait)
                        _work_item()
                        late_ms.append((time.perf_counter() - due) * 1000.0)  # done − due: its latency
                cpu = time.process_time() - cpu0
        finally:
            if server is not None:
                server.close()
    d = np.array(late_ms)
    out = {"bench": "web_stall", "condition": condition, "targets": n_targets, "seconds": seconds,
           "load_1min": round(load, 2), "items": int(d.size),
           **{f"item_{key}_ms": round(float(np.percentile(d, q)), 3) for key, q in (("p50", 50), ("p99", 99),
                                                                                     ("max", 100))},
           "items_over_2ms": int(np.sum(d > 2.0)), "items_over_5ms": int(np.sum(d > 5.0)),
           "process_cpu_per_s": round(cpu / seconds, 3)}
    if server is not None:
        snaps = [s for page_snaps in seen["snapshots"] for s in page_snaps]
        held = np.array([s["received"] - s["produced"] for s in snaps]) * 1000.0
        out.update({"snapshots_taken": [len(p) for p in seen["snapshots"]], "tracks_on_page": seen["tracks"],
                    **percentiles("page_held_lag", held),
                    "page_held_within_1s": round(float(np.mean(held <= 1000.0)), 3) if held.size else None})
    return out


# -- --page-cost: what one page spends per snapshot ------------------------------------------
def chromium_threads_cpu(root_pid: int) -> dict[str, float]:
    """CPU seconds of every Chromium thread under ``root_pid``, summed per ``process-type/thread-name``
    (process type from ``--type=``: renderer, gpu-process, utility; ``browser`` for the main process)."""
    out: dict[str, float] = {}
    for pid in process_tree(root_pid):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if "chrom" not in cmdline.split("\0")[0].split(" ")[0]:
                continue
            kind = cmdline.split("--type=", 1)[1].split()[0].split("\0")[0] if "--type=" in cmdline else "browser"
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    name = (task / "comm").read_text().strip().rstrip("0123456789")
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    key = f"{kind}/{name}"
                    out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / 100.0
    return out


def viewer_cpu(root_pid: int) -> dict[str, float]:
    """CPU seconds of the browsers' child: Chromium per process type and thread, plus ``driver`` (Playwright's
    node process) and ``python`` (the child itself), so a run can tell the pages' cost from the harness's."""
    out = chromium_threads_cpu(root_pid)
    for pid in process_tree(root_pid):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if "chrom" not in name:
                key = "driver" if "node" in Path(name).name else "python"
                out[key] = out.get(key, 0.0) + cpu_seconds(pid)
    return out


def page_cost(page: str, n_targets: int, seconds: float, alerts_per_s: int, warmup_s: float = 4.0,
              setup_js: str = "") -> dict:
    """One headless Chromium on an in-process map server fed ``n_targets`` synthetic tracks at 1 Hz (the
    2,000-track browser test's): the page's own main-thread ms per snapshot (its ``?profile=1`` hook:
    JSON.parse, state, building the map's features, setData, MapLibre's frames) and Chromium's CPU per
    second of the steady state, per process type and thread (``/proc``), after ``warmup_s``."""
    from playwright.sync_api import sync_playwright

    from fusion.config import WebConfig, load_site
    from fusion.web import AckStore, WebServer
    from tests.conftest import DEMO_SITE
    from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS, offline_page, synthetic_tracks, wait_until

    load = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    base = np.column_stack([rng.uniform(-8000, 8000, n_targets), rng.uniform(-7000, 7000, n_targets)])
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        server = WebServer(load_site(DEMO_SITE), WebConfig(listen="127.0.0.1:0"),
                           acks=AckStore(Path(tmp) / "acks.sqlite")).start()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = offline_page(browser, [])
            cdp = tab.context.new_cdp_session(tab)
            cdp.send("Performance.enable")
            tab.goto(f"{server.url}{page}?profile=1")
            wait_until(tab, "window.borderfusion.ready" + (" && window.borderfusionMap.loaded" if not page else ""), 60)
            if setup_js:
                tab.evaluate(setup_js)

            def sample() -> tuple[float, dict, dict, dict]:
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                paint = tab.evaluate("window.borderfusionMap ? window.borderfusionMap.paint : null") or {}
                return time.monotonic(), chromium_threads_cpu(os.getpid()), metrics, paint

            started, first = time.monotonic(), None
            for second in range(int(seconds)):
                tracks = synthetic_tracks(n_targets, second, rng, base)
                server.on_snapshot({"node_id": "edge-1", "t": float(second), "tracks": tracks})
                server.on_alerts([{"alert_id": f"a-{second}-{k}", "type": "border_crossing",
                                   "severity": ("high", "medium", "low")[k % 3], "t": second + k / alerts_per_s,
                                   "time": "2026-01-01T00:00:00Z", "track_id": t["track_id"], "lat": t["lat"],
                                   "lon": t["lon"], "recipients": ["agency-b"], "jurisdiction": "country-a"}
                                  for k, t in enumerate(tracks[:alerts_per_s])])
                if first is None and second >= warmup_s:
                    first = sample()
                time.sleep(max(0.0, started + second + 1 - time.monotonic()))
            last = sample()
            costs = [c for c in tab.evaluate("window.borderfusion.costs") if c["t"] >= warmup_s]
            errors = tab.errors
        finally:
            browser.close()
            server.close()
    wall = last[0] - first[0]
    cpu = {k: round((v - first[1].get(k, 0.0)) / wall, 3) for k, v in last[1].items()}
    taken = len(costs)
    per_snapshot = {key: round(statistics.median(c.get(key, 0.0) for c in costs), 2)
                    for key in ("parse_ms", "state_ms", "build_ms", "setdata_ms", "draw_ms", "view_ms")
                     if any(key in c for c in costs)} if costs else {}
    out = {"bench": "web_page_cost", "page": f"/{page}", "targets": n_targets, "alerts_per_s": alerts_per_s,
           "seconds": seconds,
           "load_1min": round(load, 2), "snapshots_taken": taken, "per_snapshot_median_ms": per_snapshot}
    if last[3]:
        frames = last[3]["frames"] - first[3]["frames"]
        out["paint"] = {"frames_per_s": round(frames / wall, 2),
                        "ms_per_s": round((last[3]["ms"] - first[3]["ms"]) / wall, 1),
                        "ms_per_frame": round((last[3]["ms"] - first[3]["ms"]) / max(frames, 1), 1)}
    out["main_thread_ms_per_s"] = {key: round((last[2][key] - first[2][key]) / wall * 1000.0, 1)
                                   for key in ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")}
    by_process: dict[str, float] = {}
    for key, value in cpu.items():
        by_process[key.split("/")[0]] = by_process.get(key.split("/")[0], 0.0) + value
    out["cpu_per_s"] = {"total": round(sum(cpu.values()), 3), **{k: round(v, 3) for k, v in sorted(by_process.items())}}
    out["busiest_threads_cpu_per_s"] = dict(sorted(((k, v) for k, v in cpu.items() if v >= 0.01),
                                                   key=lambda kv: -kv[1]))
    out["page_errors"] = errors[:3]
    return out


def stall_summary(results: list[dict], conditions: list[str]) -> dict:
    out: dict = {"bench": "web_stall_summary", "runs_per_condition": sum(r["condition"] == "none" for r in results)}
    for condition in conditions:
        mine = [r for r in results if r["condition"] == condition]
        out[condition] = {key: round(statistics.median(r[key] for r in mine), 3)
                          for key in ("item_p50_ms", "item_p99_ms", "item_max_ms", "items_over_2ms", "items_over_5ms",
                                      "process_cpu_per_s") + (("page_held_lag_p50_ms", "page_held_lag_p99_ms")
                                                              if condition != "none" else ())}
    out["load_1min"] = [r["load_1min"] for r in results]
    return out


def summary(results: list[dict], conditions: list[str]) -> dict:
    """Medians per condition; p99 and CPU of each viewing condition against ``none``, overall and per round."""
    def median(condition: str, key: str):
        values = [r[key] for r in results if r["condition"] == condition and r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    keys = ("latency_p50_ms", "latency_p99_ms", "node_cpu_per_s", "web_cpu_per_s")
    view_keys = ("page_held_lag_p50_ms", "page_held_lag_p99_ms", "node_sent_lag_p50_ms", "node_sent_lag_p99_ms",
                 "page_drawn_lag_p50_ms", "page_drawn_lag_p99_ms", "page_held_within_1s", "viewers_cpu_per_s",
                 "page_ms_per_snapshot_p50")
    out: dict = {"bench": "web_latency_summary", "runs_per_condition": sum(r["condition"] == "none" for r in results)}
    for condition in conditions:
        out[condition] = {key: median(condition, key) for key in keys + (view_keys if condition != "none" else ())}
    rounds = [results[i:i + len(conditions)] for i in range(0, len(results), len(conditions))]
    for condition in conditions[1:]:
        p99_none, p99 = out["none"]["latency_p99_ms"], out[condition]["latency_p99_ms"]
        out[f"p99_ratio_{condition}_over_none"] = round(p99 / p99_none, 3) if p99_none and p99 else None
        # each run against the none run of its round: drift in the machine's load cancels
        ratios = [by[condition]["latency_p99_ms"] / by["none"]["latency_p99_ms"]
                  for by in ({r["condition"]: r for r in one} for one in rounds) if condition in by and "none" in by]
        out[f"p99_ratio_{condition}_per_round"] = [round(x, 3) for x in ratios]
        out[f"p99_ratio_{condition}_median_of_rounds"] = round(statistics.median(ratios), 3) if ratios else None
        for key in ("node_cpu_per_s", "web_cpu_per_s"):  # the web server's cost of two viewers, both ways
            with_, without = out[condition][key], out["none"][key]
            out[f"{key}_{condition}_minus_none"] = round(with_ - without, 3) if None not in (with_, without) else None
    out["load_1min"] = [r["load_1min"] for r in results]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="rounds, each one run per condition (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of traffic per run (default 20)")
    parser.add_argument("--targets", type=int, default=2000, help="vehicles (10 detections/s each; default 2000)")
    parser.add_argument("--page", default="", choices=["", "lite"],
                        help="'' the MapLibre map (default), 'lite' Leaflet")
    parser.add_argument("--conditions", default="none,readers,browsers",
                        help="run in this order in each round; 'none' first (default none,readers,browsers)")
    parser.add_argument("--browser-core", type=int, default=os.cpu_count() - 1,
                        help="the one core the viewers may use (default: the last)")
    parser.add_argument("--node-cores", default="",
                        help="comma-separated cores for everything but the viewers (the node, its map process, "
                             "the broker, publisher and subscribers), e.g. 0: the viewers then use none of the "
                             "node's CPU, as remote workstations would (default: not pinned)")
    parser.add_argument("--stall", action="store_true",
                        help="measure the map's hold on the node's loop thread alone (see the docstring)")
    parser.add_argument("--page-cost", action="store_true",
                        help="one page's own cost per snapshot (no node): main-thread ms and Chromium's CPU")
    parser.add_argument("--alerts-per-s", type=int, default=170,
                        help="--page-cost: alerts sent to the page per second (default 170, about the node's "
                             "rate in these runs: ~3,400 border crossings in 20 s)")
    parser.add_argument("--browsers-child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--readers-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.browsers_child:
        return browser_child(args.browsers_child)
    if args.readers_child:
        return reader_child(args.readers_child)
    if args.page_cost:
        sys.path.insert(0, str(ROOT))
        for _ in range(args.pairs):
            print(json.dumps(page_cost(args.page, args.targets, args.seconds, args.alerts_per_s)), flush=True)
        return
    if args.stall:
        sys.path.insert(0, str(ROOT))
        results = []
        for _ in range(args.pairs):
            for condition in STALL_CONDITIONS:
                results.append(stall_once(condition, args.targets, args.seconds, args.browser_core))
                print(json.dumps(results[-1]), flush=True)
        print(json.dumps(stall_summary(results, list(STALL_CONDITIONS))), flush=True)
        return
    if args.node_cores:
        cores = {int(c) for c in args.node_cores.split(",")}
        if args.browser_core in cores:
            parser.error(f"--node-cores: {args.node_cores} includes the viewers' core {args.browser_core}")
        os.sched_setaffinity(0, cores)  # inherited by every child started from here on; the viewers' taskset overrides
    conditions = args.conditions.split(",")
    if conditions[0] != "none" or not set(conditions) <= {"none", "readers", "browsers"}:
        parser.error(f"--conditions: expected 'none' then readers and/or browsers, got {args.conditions!r}")
    results = []
    for _ in range(args.pairs):
        for condition in conditions:
            results.append(run_once(condition, args.targets, args.seconds, args.page, args.browser_core))
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps(summary(results, conditions)), flush=True)


if __name__ == "__main__":
    main()
