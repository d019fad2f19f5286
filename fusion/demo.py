"""``borderfusion demo``: the bundled site simulated and replayed in-process, no broker.

While it writes, the output directory holds a file ``INCOMPLETE``; it is removed
only when every output is written.  A run that stops midway (an error, Ctrl-C, a
kill) leaves it there, and an error also says on stderr that the files are partial.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from fusion.config import Site, load_site
from fusion.evaluate import evaluate
from fusion.mapplot import draw_map, drone_paths
from fusion.pipeline import Outputs
from fusion.render import warm_up_kernels
from fusion.replay import replay_file
from fusion.simulate import simulate

__all__ = ["run_demo", "write_marked", "INCOMPLETE"]

_DEMO_TARGETS = 24
INCOMPLETE = "INCOMPLETE"


def run_demo(out: Path, site_path: Path, duration_s: float = 600.0, seed: int = 7, federation: bool = False) -> int:
    """Simulate, replay, score and draw the site into ``out``; print a summary; return the exit status.

    ``federation``: two nodes and two brokers on the site's jurisdictions instead (:mod:`fusion.federation.demo`;
    its scenario has a fixed length, ``duration_s`` does not apply)."""
    site = load_site(site_path)  # a bad site stops before anything is written
    if federation:
        from fusion.federation.demo import run_federation_demo

        return run_federation_demo(out, site.resolve(site.config.site.jurisdictions), seed=seed)
    return write_marked(out, lambda: _run(out, site, duration_s, seed) or 0)


def write_marked(out: Path, body: Callable[[], int]) -> int:
    """``body()`` writing into ``out`` while the file ``INCOMPLETE`` says so; its status.

    A ``body`` that raises leaves the marker (saying why) and a line on stderr."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / INCOMPLETE
    marker.write_text("borderfusion demo is writing this directory; while this file exists its contents are partial.\n")
    try:
        status = body()
    except BaseException as error:
        marker.write_text(f"borderfusion demo stopped before finishing ({type(error).__name__}: {error}); "
                          "the other files here are partial.\n")
        print(f"borderfusion demo: stopped before finishing; the files in {out}/ are partial "
              f"(see {marker})", file=sys.stderr)
        raise
    marker.unlink()
    return status


def _run(out: Path, site: Site, duration_s: float, seed: int) -> None:
    started = time.perf_counter()
    compile_s = warm_up_kernels()  # the tracker's and the renderer's, with progress when the cache is cold
    log, truth = out / "sensors.jsonl.gz", out / "truth.jsonl"
    sim = simulate(site, duration_s, log, truth, seed=seed, n_targets=_DEMO_TARGETS)
    files = {"alerts": out / "alerts.jsonl", "tracks": out / "tracks.jsonl", "rejected": out / "rejected.jsonl"}
    kept = Outputs()
    pipeline = replay_file(site, log, files["alerts"], files["tracks"], files["rejected"], keep=kept)
    scores = evaluate(truth, files["tracks"], files["alerts"])
    (out / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
    t = sim["truth"]
    truth_paths = [t.position[i][np.isfinite(t.position[i, :, 0])] for i in range(len(t.target_ids))]
    draw_map(site, [s.to_dict() for s in kept.snapshots], [a.to_dict() for a in kept.alerts], out / "map.png", truth_paths,
             drones=drone_paths(log))
    status = pipeline.status(pipeline.latest_sensor_t)
    c = status["counters"]
    crossings = scores.get("border_crossings", {})
    print(f"borderfusion demo — site {site.name!r}, {duration_s:g} s simulated (seed {seed})")
    print(f"  targets      {sim['targets']} ({sum(1 for x in t.classes if x == 'person')} walkers, "
          f"{sum(1 for x in t.classes if x == 'vehicle')} vehicles, {sum(1 for x in t.classes if x == 'uav')} UAVs, "
          f"{sum(1 for x in t.classes if x == 'animal')} animals)")
    print(f"  messages     {c['received']} received, {c['rejected']} rejected, {c['detections']} detections")
    print(f"  tracks       {c['tracks_confirmed']} confirmed; GOSPA {scores['gospa'].get('mean')} m, "
          f"MOTA {scores.get('mota')}, IDF1 {scores.get('idf1')}")
    by_type = ", ".join(f"{n} {k}" for k, n in status["alerts_by_type"].items()) or "none"
    print(f"  alerts       {c['alerts']} ({by_type})")
    print(f"  crossings    {crossings.get('true_crossings')} true, recall {crossings.get('recall')}, "
          f"precision {crossings.get('precision')}")
    print(f"  outputs      {out}/: alerts.jsonl tracks.jsonl rejected.jsonl scores.json map.png sensors.jsonl.gz truth.jsonl")
    print(f"  took         {time.perf_counter() - started:.1f} s (kernels ready in {compile_s:.1f} s)")
