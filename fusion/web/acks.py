"""Operators' acknowledgements of alerts: the message, its checks, and its SQLite store.

An ack (published QoS 1 on ``PREFIX/acks/{agency_id}``)::

    {"alert_id": "0b6c…", "agency_id": "agency-a", "state": "acknowledged",
     "operator": "desk-1", "t": 1795000012.5}

``state`` is ``acknowledged`` or ``dismissed``.  The store keeps every ack (an
alert's history) and answers with the newest per (alert, agency); the same ack
arriving twice (our own publication echoed by the broker, a re-send) is one row.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

__all__ = ["Ack", "AckError", "AckStore", "decode_ack", "ACK_STATES"]

ACK_STATES = ("acknowledged", "dismissed")
_Id = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class AckError(ValueError):
    """An ack that cannot be used; the message says which field and why."""


class Ack(Struct, frozen=True, forbid_unknown_fields=False):
    alert_id: _Id
    agency_id: _Id
    state: Literal["acknowledged", "dismissed"]
    operator: Annotated[str, Meta(min_length=1, max_length=128)]
    t: Annotated[float, Meta(ge=0.0, le=1e11)]

    def to_dict(self) -> dict:
        return msgspec.structs.asdict(self)


_decoder = msgspec.json.Decoder(Ack)


def decode_ack(payload: bytes | str) -> Ack:
    """An ack from JSON; :class:`AckError` naming the field that is wrong."""
    try:
        return _decoder.decode(payload)
    except msgspec.ValidationError as error:
        raise AckError(f"ack: {error} (expected alert_id, agency_id, state one of {', '.join(ACK_STATES)}, "
                       "operator, t)") from None
    except msgspec.DecodeError as error:
        raise AckError(f"ack: not JSON: {error}") from None


class AckStore:
    """Acks on disk (SQLite, WAL), shared by the web thread and the MQTT thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS acks (alert_id TEXT, agency_id TEXT, state TEXT, "
                         "operator TEXT, t REAL, PRIMARY KEY (alert_id, agency_id, state, operator, t))")
        path.chmod(0o600)
        self._lock = threading.Lock()

    def add(self, ack: Ack) -> bool:
        """Store ``ack``; False if the same ack was stored before."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO acks VALUES (?, ?, ?, ?, ?)",
                                      (ack.alert_id, ack.agency_id, ack.state, ack.operator, ack.t))
            return cursor.rowcount == 1

    def latest(self, agency_id: str | None = None, alert_ids: list[str] | None = None) -> list[Ack]:
        """The newest ack per (alert, agency), of one agency (None: all), of some alerts (None: all)."""
        query = ("SELECT alert_id, agency_id, state, operator, MAX(t) FROM acks"
                 + (" WHERE agency_id = ?" if agency_id is not None else "")
                 + " GROUP BY alert_id, agency_id")
        with self._lock:
            rows = self._db.execute(query, (agency_id,) if agency_id is not None else ()).fetchall()
        wanted = set(alert_ids) if alert_ids is not None else None
        return [Ack(*row) for row in rows if wanted is None or row[0] in wanted]

    def close(self) -> None:
        with self._lock:
            self._db.close()
