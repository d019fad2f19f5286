"""Recorded logs (interface §4): streaming JSON Lines, plain or gzip.

A log is a header line then one line per MQTT message as received.  Reading is
lazy, one line at a time, so a log of any size replays in constant memory.  The
reader also accepts captures of stock Mosquitto tools (``mosquitto_sub -F %J``),
whose lines carry ``tst`` (ISO time) instead of ``t_rx`` and no header.

Payloads are kept as raw JSON bytes (``msgspec.Raw``) so that a replay validates
exactly the bytes that were recorded.

Damaged logs.  Compression is recognised by the file's first bytes (gzip's magic
``1f 8b``), not its name.  A line that is not a record (not JSON, invalid UTF-8,
nested too deeply, a field of the wrong type, a bad ``tst``, longer than
:data:`MAX_LINE_BYTES`) is a *bad line*: by default it is skipped, counted in a
:class:`LogReport` and logged with the file and line number; with ``strict`` the
first one raises :class:`LogError`.  A file that ends early (a gzip stream cut
off, a last line cut mid-way) is *truncated*: reading stops there and the report
says so, since what follows is lost.  A wrong header (another format or version)
always raises: the file is not a log this build can read.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, IO, Iterator

import msgspec

from sensors.ingest import format_validation_error, undecodable_reason

__all__ = ["LogRecord", "LogError", "LogReport", "read_log", "LogWriter", "LOG_FORMAT", "LOG_VERSION",
           "MAX_LINE_BYTES"]

log = logging.getLogger(__name__)

LOG_FORMAT = "borderfusion-log"
LOG_VERSION = 1
#: a longer line is a bad line (the ingest limit on a payload is 256 KiB)
MAX_LINE_BYTES = 8 * 1024 * 1024
#: bad lines logged one by one per file; the rest are only counted
_SHOWN_PROBLEMS = 20
_GZIP_MAGIC = b"\x1f\x8b"
#: what reading a damaged gzip stream raises: cut short, corrupt deflate data, bad CRC/header
_READ_ERRORS = (EOFError, zlib.error, OSError)


class LogError(ValueError):
    """A log that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LogRecord:
    t_rx: float
    topic: str
    payload: bytes


@dataclass
class LogReport:
    """What reading one log met, for the replay summary: records, bad lines, truncation."""

    path: str
    records: int = 0
    lines: int = 0
    skipped_lines: int = 0
    #: the first few problems, each "file:line: what"
    problems: list[str] = field(default_factory=list)
    #: why the file ended early ("file:line: …"), or None when it was read to its end
    truncated: str | None = None
    #: the line where it broke (the first line lost, whole or in part)
    truncated_line: int | None = None
    empty: bool = False
    gzip: bool = False

    @property
    def complete(self) -> bool:
        return self.truncated is None

    def to_dict(self) -> dict:
        return {"path": self.path, "records": self.records, "lines": self.lines,
                "skipped_lines": self.skipped_lines, "complete": self.complete, "truncated": self.truncated,
                "truncated_line": self.truncated_line,
                "empty": self.empty, "problems": self.problems}


class _BadLine(ValueError):
    """One line that is not a record; the message says why (without file and line)."""


class _Line(msgspec.Struct):
    topic: str
    payload: msgspec.Raw
    t_rx: Annotated[float, msgspec.Meta(ge=0.0, le=1e11)] | None = None
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


def _open_for_reading(path: Path) -> tuple[IO[bytes], IO[bytes], bool]:
    """(line reader, the raw file underneath, whether it is gzip), by the file's magic bytes."""
    raw = open(path, "rb")
    compressed = raw.read(2) == _GZIP_MAGIC
    raw.seek(0)
    if compressed:
        return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb")), raw, True
    return raw, raw, False


def _physical_lines(handle: IO[bytes]) -> Iterator[bytes | None]:
    """The file's lines; None for a line longer than :data:`MAX_LINE_BYTES` (read past, not kept)."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield line


def _mosquitto_time(tst: str) -> float:
    """mosquitto_sub's ``%J`` time, e.g. "2026-11-22T05:01:59.351646Z+0000", as UNIX seconds."""
    stamp = tst.split("Z", 1)[0]
    try:
        t = datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()
    except (ValueError, OverflowError, OSError):
        raise _BadLine(f"tst: expected an ISO time like \"2026-11-22T05:01:59.351646Z+0000\", got {tst[:60]!r}") from None
    if not 0.0 <= t <= 1e11:
        raise _BadLine(f"tst: {tst[:60]!r} is not a time after 1970")
    return t


def _payload_bytes(raw: msgspec.Raw) -> bytes:
    data = bytes(raw)
    if data[:1] == b'"':  # recorded as a string: it was not valid JSON on the wire
        try:
            return _str_decoder.decode(data).encode("utf-8")
        except (msgspec.DecodeError, UnicodeError) as error:
            raise _BadLine(f"payload: not a readable string: {error}") from None
    return data


def _record(line: bytes) -> LogRecord:
    """One line → a record; raises :class:`_BadLine` (why) or msgspec.ValidationError (maybe a header)."""
    try:
        record = _line_decoder.decode(line)
    except msgspec.ValidationError:  # a subclass of DecodeError: the caller tells a header from a bad record
        raise
    except msgspec.DecodeError as error:
        raise _BadLine(f"not JSON: {error}") from None
    except (UnicodeDecodeError, RecursionError) as error:
        raise _BadLine(undecodable_reason(error, line)) from None
    if record.t_rx is not None:
        t_rx = record.t_rx
    elif record.tst is not None:
        t_rx = _mosquitto_time(record.tst)
    else:
        raise _BadLine("a record needs 't_rx' (or mosquitto_sub's 'tst')")
    return LogRecord(t_rx, record.topic, _payload_bytes(record.payload))


def _check_header(path: Path, line: bytes) -> bool:
    """True for a good header; False when line 1 is no header at all; LogError for a wrong one."""
    try:
        header = msgspec.json.decode(line, type=_Header)
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return False
    if header.format != LOG_FORMAT:
        raise LogError(f"{path}:1: format is {header.format!r}, expected {LOG_FORMAT!r}")
    if header.version != LOG_VERSION:
        raise LogError(f"{path}:1: log version {header.version} is not supported (this build reads {LOG_VERSION})")
    return True


class _Problems:
    """Bad lines: raise at the first (strict) or log, count and skip."""

    def __init__(self, report: LogReport, strict: bool) -> None:
        self.report, self.strict = report, strict

    def bad_line(self, message: str) -> None:
        if self.strict:
            raise LogError(f"{message} (stopped: --strict)")
        report = self.report
        report.skipped_lines += 1
        if report.skipped_lines <= _SHOWN_PROBLEMS:
            report.problems.append(message)
            log.warning("%s; line skipped", message)
            if report.skipped_lines == _SHOWN_PROBLEMS:
                log.warning("%s: further bad lines are counted, not shown", report.path)

    def fatal_or_warn(self, message: str) -> None:
        if self.strict:
            raise LogError(message)
        log.warning("%s", message)

    def truncated(self, line: int, message: str) -> None:
        if self.strict:
            raise LogError(message)
        self.report.truncated, self.report.truncated_line = message, line
        log.warning("%s", message)


def read_log(path: str | Path, strict: bool = False, report: LogReport | None = None) -> Iterator[LogRecord]:
    """Yield the records of a borderfusion log or a ``mosquitto_sub -F %J`` capture, in file order.

    Bad lines are skipped, counted in ``report`` and logged (``strict``: the first
    raises :class:`LogError`); a truncated file ends the records early and sets
    ``report.truncated`` (``strict``: raises).  A missing file, an empty one (with
    ``strict``) or a wrong header raise :class:`LogError`.
    """
    path = Path(path)
    report = LogReport(str(path)) if report is None else report
    problems = _Problems(report, strict)
    try:
        handle, raw, report.gzip = _open_for_reading(path)
    except OSError as error:
        raise LogError(f"{path}: cannot open: {error.strerror or error}") from None
    if report.gzip and path.suffix != ".gz":
        log.info("%s: gzip-compressed although not named .gz; reading it as gzip", path)
    with handle, raw:
        if os.fstat(raw.fileno()).st_size == 0:
            report.empty = True
            problems.fatal_or_warn(f"{path}: empty file (0 bytes): no header and no records")
        for number, line in _numbered_lines(path, handle, raw, problems):
            try:
                record = _record(line)
            except msgspec.ValidationError as error:
                if number == 1 and _check_header(path, line):
                    continue
                problems.bad_line(f"{path}:{number}: not a log record: "
                                  f"{format_validation_error(error, line, _Line)}")
                continue
            except _BadLine as error:
                if not line.endswith(b"\n") and report.records:  # the last line of a log, cut mid-way
                    problems.truncated(number, f"{path}:{number}: the file ends in the middle of line {number} "
                                               f"(cut short?): {error}")
                    return
                problems.bad_line(f"{path}:{number}: {error}")
                continue
            report.records += 1
            yield record


def _numbered_lines(path: Path, handle: IO[bytes], raw: IO[bytes], problems: _Problems) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of the non-blank lines; ends early, reporting it, where the file is damaged."""
    lines = _physical_lines(handle)
    number = 0
    while True:
        try:
            line = next(lines, b"")
        except _READ_ERRORS as error:
            what = "gzip stream" if problems.report.gzip else "file"
            size = os.fstat(raw.fileno()).st_size
            problems.truncated(number + 1, f"{path}:{number + 1}: {what} is damaged or cut short after line "
                                           f"{number} (at byte {raw.tell()} of {size}): {error}")
            return
        if line == b"":
            return
        number += 1
        problems.report.lines = number
        if line is None:
            problems.bad_line(f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes")
        elif line.strip():
            yield number, line


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
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # not JSON msgspec reads (bytes that are not UTF-8 become U+FFFD): kept as a string,
            # which the reader hands back as the payload, so replay rejects it as live did
            body = self._encoder.encode(payload.decode("utf-8", errors="replace"))
        self._handle.write(b'{"t_rx":' + self._encoder.encode(t_rx) + b',"topic":'
                           + self._encoder.encode(topic) + b',"payload":' + body + b"}\n")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
