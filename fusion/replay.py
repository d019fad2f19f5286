"""File-mode replay: a recorded log through the pipeline, outputs as JSON Lines."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import msgspec
from tqdm import tqdm

from fusion.config import Site
from fusion.logio import read_log
from fusion.pipeline import Outputs, Pipeline

__all__ = ["replay_file", "JsonLinesSink"]


class JsonLinesSink:
    """Writes each output kind to its own JSON Lines file (or nowhere)."""

    def __init__(self, stack: ExitStack, alerts: str | Path | None, tracks: str | Path | None,
                 rejected: str | Path | None) -> None:
        self._encoder = msgspec.json.Encoder()
        self._alerts = self._open(stack, alerts)
        self._tracks = self._open(stack, tracks)
        self._rejected = self._open(stack, rejected)

    @staticmethod
    def _open(stack: ExitStack, path) -> IO[bytes] | None:
        return stack.enter_context(open(path, "wb")) if path else None

    def write(self, out: Outputs) -> None:
        enc = self._encoder.encode
        if self._alerts:
            for alert in out.alerts:
                self._alerts.write(enc(alert.to_dict()) + b"\n")
        if self._tracks:
            for snapshot in out.snapshots:
                self._tracks.write(enc(snapshot.to_dict()) + b"\n")
        if self._rejected:
            for rejection in out.rejected:
                self._rejected.write(enc(rejection.to_dict()) + b"\n")


def replay_file(site: Site, log: str | Path, alerts_out=None, tracks_out=None, rejected_out=None,
                progress: bool | None = None, keep: Outputs | None = None) -> Pipeline:
    """Feed every record of ``log`` through a fresh pipeline; returns it (for its counters).

    ``keep``, when given, also collects every output in memory (tests, the demo).
    """
    pipeline = Pipeline(site)
    show = sys.stderr.isatty() if progress is None else progress
    with ExitStack() as stack:
        sink = JsonLinesSink(stack, alerts_out, tracks_out, rejected_out)
        bar = stack.enter_context(tqdm(desc="replay", unit=" msg", disable=not show, mininterval=0.5))
        for record in read_log(log):
            out = pipeline.feed(record.t_rx, record.topic, record.payload)
            sink.write(out)
            if keep is not None:
                keep.extend(out)
            bar.update()
        out = pipeline.flush()
        sink.write(out)
        if keep is not None:
            keep.extend(out)
    return pipeline
