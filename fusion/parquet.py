"""Track snapshots and alerts as Parquet: one row per track per snapshot, typed columns.

For integrators: a replay with ``--tracks-out tracks.parquet`` opens straight in
pandas, polars or DuckDB.  The columns are those of interface §3.1 (tracks) and
§3.2 (alerts), with the same rounding as the JSON, flattened where a nested field
would be awkward in a data frame:

* tracks: ``node_id``, ``t`` (the snapshot's data time) then every track field;
  ``covariance`` is a fixed-size list of 16 float64 (the 4×4 matrix of (e, n, vₑ, vₙ),
  row-major); ``classification`` becomes ``class_person`` … ``class_unknown``;
  ``status`` and ``jurisdiction`` (null outside every country) are dictionary-encoded
  strings; ``sensors`` is a list of strings.
* alerts: the §3.2 fields; ``classification`` becomes nullable ``class_*`` columns
  (null: the class was below the 0.005 the JSON leaves out), ``recipients`` a list of
  strings, and anything type-specific beyond the common fields goes in ``extra`` as a
  JSON object string.

Rows are buffered and written as row groups of ~64k rows.  pyarrow is an optional
dependency (``pip install 'borderfusion[parquet]'``); :func:`require_pyarrow` says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from fusion.render import CLASSES, SnapshotTable
from tracking.tracker import STATUS_NAMES

__all__ = ["ParquetUnavailable", "require_pyarrow", "is_parquet", "TracksParquetWriter", "AlertsParquetWriter"]

_ROW_GROUP_ROWS = 65_536
_ALERT_COMMON = ("alert_id", "type", "t", "time", "raised_t", "node_id", "track_id", "lat", "lon", "from_jurisdiction",
                 "to_jurisdiction", "jurisdiction", "recipients", "severity", "confidence", "classification",
                 "speed_mps", "heading_deg", "eta_s")


class ParquetUnavailable(RuntimeError):
    """Parquet output was asked for but pyarrow is not installed."""


def is_parquet(path: str | Path | None) -> bool:
    return path is not None and Path(path).suffix.lower() == ".parquet"


def require_pyarrow(path: str | Path) -> Any:
    """The ``pyarrow`` module, or :class:`ParquetUnavailable` naming the file and the extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ParquetUnavailable(
            f"{path}: writing Parquet (chosen by the .parquet suffix) needs pyarrow, which is not installed: "
            "pip install 'borderfusion[parquet]' (or write JSON Lines: any other suffix)") from None
    return pyarrow


def _track_schema(pa) -> Any:
    f64 = pa.float64()
    return pa.schema(
        [("node_id", pa.string()), ("t", f64), ("track_id", pa.string()),
         ("status", pa.dictionary(pa.int8(), pa.string()))]
        + [(name, f64) for name in ("lat", "lon", "east_m", "north_m", "vel_east_mps", "vel_north_mps", "speed_mps",
                                    "heading_deg", "position_sigma_m")]
        + [("covariance", pa.list_(f64, 16)), ("existence", f64)]
        + [(f"class_{name}", f64) for name in CLASSES]
        + [("jurisdiction", pa.dictionary(pa.int32(), pa.string())), ("sensors", pa.list_(pa.string())),
           ("first_seen", f64), ("last_update", f64)])


def _alert_schema(pa) -> Any:
    f64, text = pa.float64(), pa.string()
    return pa.schema(
        [("alert_id", text), ("type", text), ("t", f64), ("time", text), ("raised_t", f64), ("node_id", text),
         ("track_id", text), ("lat", f64), ("lon", f64), ("from_jurisdiction", text), ("to_jurisdiction", text),
         ("jurisdiction", text), ("recipients", pa.list_(text)), ("severity", text), ("confidence", f64)]
        + [(f"class_{name}", f64) for name in CLASSES]
        + [("speed_mps", f64), ("heading_deg", f64), ("eta_s", f64), ("extra", text)])


class _Writer:
    """Buffers record batches and writes them as row groups; the file is created 0600 by ``open_file``."""

    def __init__(self, path: str | Path, schema_of, handle) -> None:
        self.pa = require_pyarrow(path)
        import pyarrow.parquet as pq

        self.schema = schema_of(self.pa)
        self._file = pq.ParquetWriter(handle, self.schema, compression="zstd")
        self._batches: list = []
        self._rows = 0

    def _add(self, batch) -> None:
        self._batches.append(batch)
        self._rows += batch.num_rows
        if self._rows >= _ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._batches:
            self._file.write_table(self.pa.Table.from_batches(self._batches, self.schema),
                                   row_group_size=max(self._rows, 1))
        self._batches, self._rows = [], 0

    def close(self) -> None:
        self._flush()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TracksParquetWriter(_Writer):
    """One row per track per snapshot, from the snapshot's columns (:class:`~fusion.render.SnapshotTable`)."""

    def __init__(self, path: str | Path, handle) -> None:
        super().__init__(path, _track_schema, handle)

    def write(self, table: SnapshotTable) -> None:
        n = len(table)
        if n == 0:
            return
        pa = self.pa
        import pyarrow.compute as pc

        track_id = pc.binary_join_element_wise(table.node_id, pc.cast(pa.array(table.track_id), pa.string()), "-")
        status = pa.DictionaryArray.from_arrays(pa.array(table.status.astype(np.int8)), pa.array(STATUS_NAMES))
        jurisdiction = pa.DictionaryArray.from_arrays(
            pa.array(table.country.astype(np.int32), mask=table.country < 0), pa.array(table.country_ids, pa.string()))
        rows, columns = np.nonzero(table.sensor_bits)  # row-major: each track's sensors in order
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
        sensors = pa.ListArray.from_arrays(pa.array(offsets),
                                           pa.array(np.array(table.sensor_ids, dtype=object)[columns], pa.string()))
        covariance = pa.FixedSizeListArray.from_arrays(pa.array(table.covariance.reshape(-1)), 16)
        arrays = ([pa.array(np.full(n, table.node_id, dtype=object), pa.string()), pa.array(np.full(n, table.t)),
                   track_id, status]
                  + [pa.array(getattr(table, name)) for name in
                     ("lat", "lon", "east_m", "north_m", "vel_east_mps", "vel_north_mps", "speed_mps", "heading_deg",
                      "position_sigma_m")]
                  + [covariance, pa.array(table.existence)]
                  + [pa.array(table.class_prob[:, k]) for k in range(len(CLASSES))]
                  + [jurisdiction, sensors, pa.array(table.first_seen), pa.array(table.last_update)])
        self._add(pa.RecordBatch.from_arrays(arrays, schema=self.schema))


class AlertsParquetWriter(_Writer):
    """One row per alert (alerts are few: built from each alert's §3.2 dict)."""

    def __init__(self, path: str | Path, handle) -> None:
        super().__init__(path, _alert_schema, handle)

    def write(self, alerts: list) -> None:
        if not alerts:
            return
        rows = []
        for alert in alerts:
            data = alert.to_dict()
            classes = data.pop("classification")
            row = {key: data.pop(key, None) for key in _ALERT_COMMON if key != "classification"}
            row.update({f"class_{name}": classes.get(name) for name in CLASSES})
            row["extra"] = msgspec.json.encode(data).decode() if data else None
            rows.append(row)
        self._add(self.pa.RecordBatch.from_pylist(rows, schema=self.schema))
