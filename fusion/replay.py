"""File-mode replay: a recorded log through the pipeline, outputs as JSON Lines (or Parquet).

The output files are created readable by their owner only (mode 0600): alerts,
track positions and echoed sensor payloads are surveillance data, and any local
user could read a file created with the usual 0644.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import msgspec

from fusion.config import Site
from fusion.logio import LogReport, read_log
from fusion.parquet import AlertsParquetWriter, TracksParquetWriter, is_parquet, require_pyarrow
from fusion.pipeline import Outputs, Pipeline

__all__ = ["replay_file", "OutputSink", "open_private"]


def open_private(path: str | Path) -> IO[bytes]:
    """Open ``path`` for writing (truncated), readable and writable by its owner only (0600).

    The mode is given at creation, so the file is never readable by others, not even
    briefly; an existing file is narrowed to 0600 too.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


class OutputSink:
    """Writes each output kind to its own file (or nowhere): JSON Lines, or Parquet for tracks and
    alerts whose path ends in ``.parquet`` (:mod:`fusion.parquet`, needs pyarrow)."""

    def __init__(self, stack: ExitStack, alerts: str | Path | None, tracks: str | Path | None,
                 rejected: str | Path | None) -> None:
        self._encoder = msgspec.json.Encoder()
        if is_parquet(rejected):
            raise ValueError(f"{rejected}: rejected inputs are written as JSON Lines only (use a .jsonl name)")
        for path in (alerts, tracks):
            if is_parquet(path):
                require_pyarrow(path)  # before any file is created
        self._alerts_parquet = self._parquet(stack, alerts, AlertsParquetWriter)
        self._tracks_parquet = self._parquet(stack, tracks, TracksParquetWriter)
        self._alerts = None if self._alerts_parquet else self._open(stack, alerts)
        self._tracks = None if self._tracks_parquet else self._open(stack, tracks)
        self._rejected = self._open(stack, rejected)

    @staticmethod
    def _open(stack: ExitStack, path) -> IO[bytes] | None:
        return stack.enter_context(open_private(path)) if path else None

    @staticmethod
    def _parquet(stack: ExitStack, path, kind):
        if not is_parquet(path):
            return None
        handle = stack.enter_context(open_private(path))
        return stack.enter_context(kind(path, handle))

    def write(self, out: Outputs) -> None:
        enc = self._encoder.encode
        if self._alerts:
            for alert in out.alerts:
                self._alerts.write(enc(alert.to_dict()) + b"\n")
        elif self._alerts_parquet:
            self._alerts_parquet.write(out.alerts)
        if self._tracks:
            for snapshot in out.snapshots:  # two writes: no copy of a multi-megabyte snapshot to add a newline
                self._tracks.write(snapshot.to_json())
                self._tracks.write(b"\n")
        elif self._tracks_parquet:
            for snapshot in out.snapshots:
                self._tracks_parquet.write(snapshot.table)
        if self._rejected:
            for rejection in out.rejected:
                self._rejected.write(enc(rejection.to_dict()) + b"\n")


def replay_file(site: Site, log: str | Path, alerts_out=None, tracks_out=None, rejected_out=None,
                progress: bool | None = None, keep: Outputs | None = None, strict: bool = False,
                report: LogReport | None = None, pipeline: Pipeline | None = None) -> Pipeline:
    """Feed every record of ``log`` through a fresh pipeline (``pipeline``, when given: one just built
    for ``site`` and not fed yet, e.g. by the warm-up); returns it (for its counters).

    A pipeline built here makes track snapshots only when something takes them (``tracks_out``,
    ``keep``): a replay for its alerts alone does not predict every track once a period.

    ``keep``, when given, also collects every output in memory (tests, the demo).
    Damaged logs follow :func:`~fusion.logio.read_log`: bad lines are skipped and
    counted in ``report`` (``strict``: :class:`~fusion.logio.LogError` at the first),
    and a truncated log ends the replay early with ``report.truncated`` set.
    """
    pipeline = pipeline or Pipeline(site, emit_snapshots=bool(tracks_out) or keep is not None)
    show = sys.stderr.isatty() if progress is None else progress
    with ExitStack() as stack:
        sink = OutputSink(stack, alerts_out, tracks_out, rejected_out)
        bar = _progress_bar(stack) if show else None
        for record in read_log(log, strict=strict, report=report):
            out = pipeline.feed(record.t_rx, record.topic, record.payload)
            sink.write(out)
            if keep is not None:
                keep.extend(out)
            if bar is not None:
                bar.update()
        out = pipeline.flush()
        sink.write(out)
        if keep is not None:
            keep.extend(out)
    return pipeline


def _progress_bar(stack: ExitStack):
    """A tqdm bar on stderr for a person watching (tqdm imported only then)."""
    from tqdm import tqdm

    return stack.enter_context(tqdm(desc="replay", unit=" msg", mininterval=0.5))
