"""The ``borderfusion`` command line (interface §6).

Exit status: 0 on success, 2 on bad arguments or configuration, 1 otherwise.

Start-up: each command imports what it needs when it runs, so ``--help`` and
``validate-config`` never load numba, scipy or the tracker's kernels (< 1 s).
"""

from __future__ import annotations

import argparse
import gc
import importlib.resources
import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from fusion.config import Site
    from fusion.logio import LogReport

__all__ = ["main", "DEMO_SITE"]

log = logging.getLogger("borderfusion")


def _demo_site() -> Path:
    """The bundled example site: ``configs/demo`` in a checkout, else the copy installed as ``fusion.demo_site``."""
    checkout = Path(__file__).resolve().parent.parent / "configs" / "demo" / "site.toml"
    if checkout.is_file():
        return checkout
    return Path(str(importlib.resources.files("fusion.demo_site").joinpath("site.toml")))


DEMO_SITE = _demo_site()
CONTRACT = "docs/interface.md"


def _site(path: str) -> Site:
    from fusion.config import load_site

    return load_site(path)


@contextmanager
def _start_up() -> Iterator[None]:
    """Start-up (imports, the site and its geofence built, kernels loaded from numba's cache) with the
    cyclic garbage collector paused, then the objects it made frozen (``gc.freeze``).

    Start-up makes ~130,000 long-lived objects (numba's, scipy's, pyproj's) and next to no garbage,
    but their allocations set the collector off ~400 times, three of them full passes over all of
    them: ~0.2 CPU-s of a ~1.3 s start, measured.  Frozen, they are not walked again by the full
    collections while the command runs.  Reference counting frees everything else as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _print_json(data: dict) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


# -- commands ----------------------------------------------------------------------------
def cmd_validate_config(args) -> int:
    site = _site(args.config)
    kinds: dict[str, int] = {}
    for s in site.sensors:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    print(f"{site.path}: OK — site {site.name!r}, node {site.node_id!r}, "
          f"{len(site.sensors)} sensors ({', '.join(f'{n} {k}' for k, n in kinds.items())}), "
          f"{len(site.jurisdictions)} jurisdictions ({', '.join(j.id for j in site.jurisdictions)})")
    return 0


def cmd_simulate(args) -> int:
    from fusion.simulate import default_targets, simulate

    targets = args.targets if args.targets is not None else default_targets(args.duration)
    if targets * args.duration > MAX_TARGET_SECONDS:
        print(f"borderfusion simulate: --targets {targets} × --duration {args.duration:g} s is "
              f"{targets * args.duration:,.0f} target-seconds; at most {MAX_TARGET_SECONDS:,.0f} fit in memory: "
              "use fewer targets or a shorter duration", file=sys.stderr)
        return 2
    site = _site(args.config)
    result = simulate(site, args.duration, args.out, args.truth, seed=args.seed, n_targets=args.targets)
    print(f"wrote {result['messages']} messages for {result['targets']} targets over {args.duration:g} s to {args.out}"
          + (f"; truth ({result['truth_lines']} lines) to {args.truth}" if args.truth else ""))
    return 0


def _summary(pipeline, elapsed: float) -> dict:
    status = pipeline.status(pipeline.latest_sensor_t if pipeline.latest_sensor_t > 0 else 0.0)
    return {"counters": status["counters"], "alerts_by_type": status["alerts_by_type"],
            "processing_s": round(elapsed, 2)}


def cmd_replay(args) -> int:
    with _start_up():
        site = _site(args.config)
    if args.web and args.publish:
        print("borderfusion replay: --web and --publish exclude each other: --web plays the log onto the map "
              "here, --publish sends it to the broker", file=sys.stderr)
        return 2
    if args.publish:
        from fusion.mqtt import publish_log

        count = publish_log(site, args.log, speed=args.speed)
        print(f"published {count} messages from {args.log}")
        return 0
    if args.web:
        return _replay_web(site, args)
    if args.federation:  # both nodes offline, each releasing to the other (fusion.federation.pair)
        from fusion.federation.pair import replay_federation

        if any(str(f).endswith(".parquet") for f in (args.alerts_out, args.tracks_out) if f):
            print("borderfusion replay: --federation writes JSON Lines only", file=sys.stderr)
            return 2
        partner_site, partner_log = args.federation
        _print_json(replay_federation(site, args.log, _site(partner_site), partner_log, args.alerts_out,
                                      args.tracks_out, args.rejected_out))
        return 0
    problem = _output_format_problem(args)
    if problem:
        print(f"borderfusion replay: {problem}", file=sys.stderr)
        return 2
    with _start_up():
        from fusion.logio import LogError, LogReport
        from fusion.parquet import is_parquet
        from fusion.pipeline import Pipeline
        from fusion.render import warm_up_kernels
        from fusion.replay import replay_file

        built: list[Pipeline] = []  # the warm-up's pipeline is the replay's: a site's geofence costs ~0.1 s to build

        def build() -> None:  # snapshots only when written: a replay for alerts alone skips their predictions
            built.append(Pipeline(site, emit_snapshots=bool(args.tracks_out)))
        json_tracks = bool(args.tracks_out) and not is_parquet(args.tracks_out)  # else the JSON kernel never runs
        warm_up_kernels(extra=[("geofence of the site", build)], rendering=json_tracks)  # compiles on first build
    started = time.perf_counter()
    report = LogReport(args.log)
    outputs = ", ".join(f for f in (args.alerts_out, args.tracks_out, args.rejected_out) if f) or "none"
    try:
        pipeline = replay_file(site, args.log, args.alerts_out, args.tracks_out, args.rejected_out,
                               strict=args.strict, report=report, pipeline=built[0])
    except LogError as error:
        if report.records:
            error = LogError(f"{error}\nPARTIAL: outputs ({outputs}) hold only the {report.records} records before it")
        raise error from None
    _print_json({**_summary(pipeline, time.perf_counter() - started), "log": report.to_dict()})
    return _replay_verdict(report, outputs)


def _output_format_problem(args) -> str | None:
    """Why the output files cannot be written as named (Parquet without pyarrow, rejected inputs as
    Parquet), before any work is done; None when they can."""
    from fusion.parquet import ParquetUnavailable, is_parquet, require_pyarrow

    if is_parquet(args.rejected_out):
        return (f"--rejected-out {args.rejected_out}: rejected inputs are written as JSON Lines only (use a .jsonl "
                "name); Parquet is for --tracks-out and --alerts-out")
    try:
        for path in (args.alerts_out, args.tracks_out):
            if is_parquet(path):
                require_pyarrow(path)
    except ParquetUnavailable as error:
        return str(error)
    return None


def _replay_web(site: Site, args) -> int:
    """``replay LOG --web HOST:PORT [--speed X]``: the log played onto the operator map."""
    from fusion.render import warm_up_kernels
    from fusion.web.player import serve_replay

    warm_up_kernels()
    speed = args.speed if args.speed is not None else 1.0

    def ready(url: str) -> None:
        print(f"replaying {args.log} at ×{speed:g} on the operator map: {url} (lite page: {url}lite); "
              "Ctrl-C to stop", flush=True)
    return serve_replay(site, args.log, args.web, speed=speed, on_ready=ready)


def _replay_verdict(report: LogReport, outputs: str) -> int:
    """One closing line on what was wrong with the log (the reader logged each problem with its
    file and line); 1 when the outputs do not cover a whole log."""
    if report.truncated:
        print(f"borderfusion: PARTIAL: {report.path} is cut short at line {report.truncated_line}; outputs "
              f"({outputs}) hold only the {report.records} records before that point", file=sys.stderr)
        return 1
    if report.empty:
        print(f"borderfusion: {report.path} is empty (0 bytes); nothing was replayed", file=sys.stderr)
        return 1
    if report.skipped_lines and not report.records:
        print(f"borderfusion: none of the {report.lines} lines of {report.path} is a log record; "
              "is it a borderfusion log or a mosquitto_sub -F %J capture?", file=sys.stderr)
        return 1
    if report.skipped_lines:
        print(f"borderfusion: skipped {report.skipped_lines} bad lines of {report.lines} in {report.path} "
              "(each named above); --strict stops at the first", file=sys.stderr)
    elif not report.records:
        print(f"borderfusion: {report.path} holds no records; nothing was replayed", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    from fusion.evaluate import EvaluationError, evaluate

    try:
        result = evaluate(args.truth, args.tracks, args.alerts, c=args.cutoff, check=not args.no_check)
    except EvaluationError as error:
        print(f"borderfusion evaluate: {error}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    _print_json(result)
    return 0


def cmd_map(args) -> int:
    """``borderfusion map``: the static map of any run's tracks and alerts."""
    from fusion.evaluate import EvaluationError, _lines
    from fusion.mapplot import AlertLine, SnapshotLine, draw_map, drone_paths

    site = _site(args.config)
    try:
        snapshots = _lines(args.tracks, SnapshotLine, "track snapshot (interface 3.1)")
        alerts = _lines(args.alerts, AlertLine, "alert (interface 3.2)") if args.alerts else []
    except EvaluationError as error:
        print(f"borderfusion map: {error}", file=sys.stderr)
        return 2
    drones = drone_paths(args.log) if args.log else None
    draw_map(site, snapshots, alerts, args.out, drones=drones)
    print(f"wrote {args.out}: {len({t['track_id'] for s in snapshots for t in s['tracks']})} tracks, "
          f"{len(alerts)} alerts")
    return 0


def cmd_demo(args) -> int:
    from fusion.demo import run_demo

    if args.federation:
        from fusion.federation.demo import FederationDemoError

        try:
            return run_demo(Path(args.out), DEMO_SITE, seed=args.seed, federation=True)
        except FederationDemoError as error:
            print(f"borderfusion demo --federation: {error}", file=sys.stderr)
            return 1
    status = run_demo(Path(args.out), DEMO_SITE, duration_s=args.duration, seed=args.seed)
    if status != 0 or not args.web:
        return status
    from fusion.web.player import serve_replay

    def ready(url: str) -> None:
        print(f"demo on the operator map at ×{args.speed:g}: {url} (lite page: {url}lite); Ctrl-C to stop", flush=True)
    return serve_replay(_site(str(DEMO_SITE)), Path(args.out) / "sensors.jsonl.gz", args.web, speed=args.speed,
                        on_ready=ready, acks=Path(args.out) / "acks.sqlite")


def cmd_run(args) -> int:
    from fusion.mqtt import run_live

    return run_live(_site(args.config))


def cmd_record(args) -> int:
    from fusion.mqtt import record

    def ready(topic: str) -> None:
        print(f"recording {topic} into {args.out} (Ctrl-C to stop)", flush=True)

    count = record(_site(args.config), args.out, duration_s=args.duration, on_ready=ready)
    print(f"recorded {count} messages to {args.out}")
    return 0


# -- parser ------------------------------------------------------------------------------
#: the longest run ``simulate`` and ``demo`` accept, and the most target-seconds: the
#: scenario holds every target's path at 1 s in memory (32 bytes per target-second;
#: six hours at the default one target per 30 s is 0.5 GB)
MAX_SIMULATED_S = 21_600.0
MAX_TARGET_SECONDS = 2e7


def _bounded(kind: type, low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse type: a ``kind`` number in [low, high] (finite), with a message saying what is valid."""
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (low <= value <= high):  # also false for NaN
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return convert


_duration = _bounded(float, 1e-3, MAX_SIMULATED_S,
                     f"a number of seconds greater than 0 and at most {MAX_SIMULATED_S:,.0f} (six hours)")
_seed = _bounded(int, 0, 2**63 - 1, "a whole number ≥ 0")
_targets = _bounded(int, 0, 100_000, "a whole number of targets from 0 (clutter only) to 100,000")
_cutoff = _bounded(float, 1e-3, 1e6, "a distance in metres greater than 0 (e.g. 100)")


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'max', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'max', got {text!r}")
    return value


def _listen(text: str) -> str:
    from fusion.web.server import parse_listen

    try:
        parse_listen(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


_web_speed = _bounded(float, 1e-3, 1000.0, "a speed factor greater than 0 and at most 1000")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="borderfusion",
        description="Sensor fusion for border surveillance: radar, ground-sensor and drone detections "
                    "→ tracks → geofenced alerts, over MQTT or from recorded logs.",
        epilog=f"The external contract (MQTT topics, payloads, log format, site configuration, this command "
               f"line) is {CONTRACT} in the borderfusion repository (interface version 1).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the bundled example site end to end, no broker needed")
    p.add_argument("--out", default="demo-out", help="directory for alerts, tracks, log and map (default: demo-out)")
    p.add_argument("--duration", type=_duration, default=600.0, help="simulated seconds (default 600)")
    p.add_argument("--seed", type=_seed, default=7, help="scenario seed (default 7)")
    p.add_argument("--web", nargs="?", const="127.0.0.1:8080", type=_listen, metavar="HOST:PORT",
                   help="then play the demo on the operator map at HOST:PORT (default 127.0.0.1:8080) until Ctrl-C")
    p.add_argument("--speed", type=_web_speed, default=5.0, metavar="X", help="with --web: X times real time (default 5)")
    p.add_argument("--federation", action="store_true",
                   help="two sovereign nodes and two bridged Mosquitto brokers on loopback instead (needs mosquitto; "
                        "a fixed 110 s scenario fed at 4x real time; --duration and --web do not apply)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "run", help="the live pipeline against the MQTT broker of the site config",
        description="Subscribe to PREFIX/raw/+/+ on the site's broker ([mqtt]), track, and publish track "
                    "snapshots (PREFIX/tracks), alerts to each agency (PREFIX/alerts/{agency}, through an "
                    "on-disk outbox: none is lost), rejected input with its reason (PREFIX/rejected) and the "
                    "node's status (PREFIX/status/{node}). Optional, by the site file: the live map ([web], "
                    "served by a child process), the TAK feed ([outputs.cot]), partner agreements "
                    "([[federation.partners]]) and crash recovery ([checkpoint]). Stops on Ctrl-C or SIGTERM "
                    "after draining. Exit 2: bad site file (the message names the file and field).",
        epilog=f"Topics, payloads and every site key: {CONTRACT}, sections 3 and 5.")
    p.add_argument("--config", required=True, metavar="SITE.toml", help="the site file (validate-config checks it)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("replay", help="feed a recorded log through the pipeline (or re-publish it)")
    p.add_argument("log", metavar="LOG", help="a .jsonl or .jsonl.gz log (or a mosquitto_sub -F %%J capture)")
    p.add_argument("--config", required=True, metavar="SITE.toml")
    p.add_argument("--speed", type=_speed, default=None, metavar="X|max",
                   help="with --publish: X times real time, or 'max' (default: max); with --web: X (default 1)")
    p.add_argument("--web", type=_listen, metavar="HOST:PORT",
                   help="play the log on the operator map served at HOST:PORT, with play/pause/speed/time controls")
    p.add_argument("--publish", action="store_true", help="re-publish the log to the broker instead of processing it")
    p.add_argument("--federation", nargs=2, metavar=("PARTNER_SITE", "PARTNER_LOG"),
                   help="replay a partner node's log beside this one: each releases to the other through its "
                        "agreement, and this node fuses the partner's tracks as it would live")
    p.add_argument("--alerts-out", metavar="F",
                   help="write alerts: JSON Lines, or Parquet when F ends in .parquet (needs the 'parquet' extra)")
    p.add_argument("--tracks-out", metavar="F",
                   help="write track snapshots: JSON Lines, or Parquet (one row per track per snapshot) when F "
                        "ends in .parquet (needs the 'parquet' extra)")
    p.add_argument("--rejected-out", metavar="F", help="write rejected inputs (JSON Lines)")
    p.add_argument("--strict", action="store_true",
                   help="stop with exit status 1 at the first bad log line (default: skip bad lines, count "
                        "them and name each one's file and line); a truncated log exits 1 either way")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("record", help="record the raw topics from the broker into a log")
    p.add_argument("--config", required=True, metavar="SITE.toml")
    p.add_argument("--out", required=True, metavar="LOG", help="output log (.jsonl or .jsonl.gz)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("simulate", help="write a synthetic sensor log (and ground truth) for a site")
    p.add_argument("--config", required=True, metavar="SITE.toml")
    p.add_argument("--duration", type=_duration, required=True, metavar="S",
                   help=f"simulated seconds, > 0 and at most {MAX_SIMULATED_S:,.0f}")
    p.add_argument("--out", required=True, metavar="LOG", help="output log (.jsonl or .jsonl.gz)")
    p.add_argument("--truth", metavar="F", help="also write the ground truth (JSON Lines)")
    p.add_argument("--seed", type=_seed, default=0, metavar="N", help="scenario seed, ≥ 0 (default 0)")
    p.add_argument("--targets", type=_targets, default=None, metavar="N", help="number of targets (default: one per 30 s)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("evaluate", help="score tracks and alerts against ground truth")
    p.add_argument("--truth", required=True, metavar="F")
    p.add_argument("--tracks", required=True, metavar="F")
    p.add_argument("--alerts", metavar="F")
    p.add_argument("--cutoff", type=_cutoff, default=100.0, metavar="M", help="GOSPA cut-off c and match distance (default 100 m)")
    p.add_argument("--json", metavar="F", help="also write the scores as JSON")
    p.add_argument("--no-check", action="store_true",
                   help="score the files even if they do not look like one site and run (see docs/interface.md)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("map", help="draw a run's tracks and alerts on the site as a PNG")
    p.add_argument("--config", required=True, metavar="SITE.toml")
    p.add_argument("--tracks", required=True, metavar="T", help="track snapshots (JSON Lines, from replay --tracks-out)")
    p.add_argument("--alerts", metavar="A", help="alerts (JSON Lines, from replay --alerts-out)")
    p.add_argument("--log", metavar="LOG", help="the sensor log, to draw the drones' flown paths")
    p.add_argument("--out", required=True, metavar="map.png", help="the picture to write (PNG)")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("validate-config", help="check a site file and its jurisdictions without running")
    p.add_argument("config", metavar="SITE.toml")
    p.set_defaults(func=cmd_validate_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with _start_up():
        from fusion.config import ConfigError
        from fusion.logio import LogError

    try:
        return args.func(args)
    except ConfigError as error:
        print(f"borderfusion: configuration error: {error}", file=sys.stderr)
        return 2
    except LogError as error:
        print(f"borderfusion: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"borderfusion: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
