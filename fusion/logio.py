"""Recorded logs (interface §4): streaming JSON Lines, plain or gzip.

A log is a header line then one line per MQTT message as received.  Reading is
lazy, one line at a time, so a log of any size replays in constant memory.  The
reader also accepts captures of stock Mosquitto tools (``mosquitto_sub -F %J``),
whose lines carry ``tst`` (ISO time) instead of ``t_rx`` and no header.

Payloads are kept as raw JSON bytes (``msgspec.Raw``) so that a replay validates
exactly the bytes that were recorded.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator

import msgspec

__all__ = ["LogRecord", "LogError", "read_log", "LogWriter", "LOG_FORMAT", "LOG_VERSION"]

LOG_FORMAT = "borderfusion-log"
LOG_VERSION = 1


class LogError(ValueError):
    """A log that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LogRecord:
    t_rx: float
    topic: str
    payload: bytes


class _Line(msgspec.Struct):
    topic: str
    payload: msgspec.Raw
    t_rx: float | None = None
    tst: str | None = None
    format: str | None = None


class _Header(msgspec.Struct):
    format: str
    version: int
    site: str = ""


_line_decoder = msgspec.json.Decoder(_Line)
_str_decoder = msgspec.json.Decoder(str)


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "b")
    return open(path, mode + "b")


def _mosquitto_time(tst: str) -> float:
    # mosquitto_sub prints e.g. "2026-11-22T05:01:59.351646Z+0000"
    stamp = tst.split("Z", 1)[0]
    return datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()


def _payload_bytes(raw: msgspec.Raw) -> bytes:
    data = bytes(raw)
    if data[:1] == b'"':  # recorded as a string: it was not valid JSON on the wire
        return _str_decoder.decode(data).encode("utf-8")
    return data


def read_log(path: str | Path) -> Iterator[LogRecord]:
    """Yield the records of a borderfusion log or a ``mosquitto_sub -F %J`` capture, in file order."""
    path = Path(path)
    try:
        handle = _open(path, "r")
    except OSError as error:
        raise LogError(f"{path}: cannot open: {error.strerror}") from None
    with handle:
        for number, line in enumerate(io.BufferedReader(handle), start=1):
            if not line.strip():
                continue
            try:
                record = _line_decoder.decode(line)
            except msgspec.ValidationError as error:
                if number == 1:
                    _check_header(path, line)
                    continue
                raise LogError(f"{path}:{number}: not a log record: {error}") from None
            except msgspec.DecodeError as error:
                raise LogError(f"{path}:{number}: not JSON: {error}") from None
            except (OSError, EOFError) as error:
                raise LogError(f"{path}:{number}: cannot read: {error}") from None
            if record.t_rx is not None:
                t_rx = record.t_rx
            elif record.tst is not None:
                t_rx = _mosquitto_time(record.tst)
            else:
                raise LogError(f"{path}:{number}: a record needs 't_rx' (or mosquitto_sub's 'tst')")
            yield LogRecord(t_rx, record.topic, _payload_bytes(record.payload))


def _check_header(path: Path, line: bytes) -> None:
    try:
        header = msgspec.json.decode(line, type=_Header)
    except msgspec.MsgspecError as error:
        raise LogError(f"{path}:1: neither a log header nor a record: {error}") from None
    if header.format != LOG_FORMAT:
        raise LogError(f"{path}:1: format is {header.format!r}, expected {LOG_FORMAT!r}")
    if header.version != LOG_VERSION:
        raise LogError(f"{path}:1: log version {header.version} is not supported (this build reads {LOG_VERSION})")


def read_header(path: str | Path) -> dict:
    """The header of a borderfusion log ({} for a mosquitto capture)."""
    with _open(Path(path), "r") as handle:
        first = handle.readline()
    try:
        document = msgspec.json.decode(first)
    except msgspec.DecodeError:
        return {}
    return document if isinstance(document, dict) and document.get("format") == LOG_FORMAT else {}


class LogWriter:
    """Append records to a log, header first; ``.gz`` paths are gzip-compressed."""

    def __init__(self, path: str | Path, site: str) -> None:
        self.path = Path(path)
        self._handle = _open(self.path, "w")
        self._encoder = msgspec.json.Encoder()
        self._handle.write(self._encoder.encode({"format": LOG_FORMAT, "version": LOG_VERSION, "site": site}) + b"\n")

    def write(self, t_rx: float, topic: str, payload: bytes) -> None:
        """Record one message: a JSON payload is embedded as an object, anything else as a string."""
        try:
            document = msgspec.json.decode(payload)
            # one record per line: a pretty-printed payload is re-encoded compactly
            body = payload if b"\n" not in payload and b"\r" not in payload else self._encoder.encode(document)
        except msgspec.DecodeError:
            body = self._encoder.encode(payload.decode("utf-8", errors="replace"))
        self._handle.write(b'{"t_rx":' + self._encoder.encode(t_rx) + b',"topic":'
                           + self._encoder.encode(topic) + b',"payload":' + body + b"}\n")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
