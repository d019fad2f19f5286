"""The pipeline's whole state on disk, written atomically; read back at start-up.

One file, ``<path>/<node_id>.npz``: the numpy arrays of every part (tracker table,
geofence slots, held scans) under ``part.name``, plus ``meta``: the scalars (counters,
clocks, duplicate windows, held alerts) as UTF-8 JSON in a byte array.  Nothing is
pickled: ``numpy.load`` runs with ``allow_pickle=False``, so a checkpoint can hold no
code.  A write goes to a temporary file in the same folder, is synced to disk, and
then renamed over the old one (``os.replace`` is atomic on POSIX), and the folder is
synced too: a crash at any moment leaves either the old checkpoint or the new one.

The checkpoint names the layout it was made for (:func:`layout`: node, sensors,
zones, motion models); a checkpoint of another layout stops start-up with
:class:`~fusion.config.ConfigError` rather than be silently mixed into a new one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from fusion.config import ConfigError, Site

__all__ = ["FORMAT", "layout", "encode", "decode", "write_atomic", "state_bytes", "save", "load", "checkpoint_file"]

#: the format written; 2: the geofence's slots compact (known tracks only, paths end to end)
FORMAT = 2
#: the formats read (1: the geofence's whole slot table, converted on loading)
READABLE = (1, 2)


def checkpoint_file(site: Site) -> Path:
    """Where this node's checkpoint lives (``[checkpoint] path``, relative to the site file)."""
    return site.resolve(site.config.checkpoint.path) / f"{site.node_id}.npz"


def layout(site: Site) -> dict:
    """What a checkpoint must match to be taken over: node, sensors in order, zones, motion models."""
    return {"node_id": site.node_id, "sensors": [s.spec.id for s in site.sensors],
            "zones": [j.id for j in site.jurisdictions if j.kind == "zone"],
            "models": 2 if site.config.tracker.imm.enabled else 1}


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-able in a checkpoint: {type(value).__name__}")


def encode(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    """``arrays`` and ``meta`` as the bytes of one ``.npz`` (uncompressed: a checkpoint a second must be cheap)."""
    if "meta" in arrays:
        raise ValueError("'meta' is reserved for the scalars")
    text = json.dumps(meta, default=_jsonable, allow_nan=True).encode()
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(text, np.uint8), **arrays)
    return buffer.getvalue()


def decode(data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    """The inverse of :func:`encode`; ``ValueError`` for bytes that are not a checkpoint."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"not a checkpoint ({error})") from None
    if "meta" not in arrays:
        raise ValueError("not a checkpoint (no 'meta' entry)")
    return arrays, json.loads(arrays.pop("meta").tobytes())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old or the new content, never a mix.

    temp file in the same folder → write → fsync → rename → fsync of the folder (the rename
    itself is durable only once the directory entry is on disk).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def state_bytes(site: Site, pipeline) -> bytes:
    """``pipeline``'s whole state (a :class:`~fusion.pipeline.Pipeline`), as the checkpoint file's bytes."""
    arrays, meta = pipeline.export_state()
    return encode(arrays, {"format": FORMAT, "layout": layout(site), "pipeline": meta})


def save(site: Site, pipeline) -> tuple[Path, int]:
    """Checkpoint ``pipeline``; returns (file, bytes written)."""
    data = state_bytes(site, pipeline)
    path = checkpoint_file(site)
    write_atomic(path, data)
    return path, len(data)


def load(site: Site, pipeline, now_rx: float | None = None) -> bool:
    """Restore ``pipeline`` from this node's checkpoint, if there is one; True if restored.

    A checkpoint that cannot be read, or that was made for another layout, stops
    start-up (:class:`ConfigError` naming the file and what differs): starting empty
    instead would reuse track ids and re-raise alerts under new ids.
    """
    path = checkpoint_file(site)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the checkpoint: {error.strerror}") from None
    try:
        arrays, meta = decode(data)
    except ValueError as error:
        raise ConfigError(f"{path}: {error}; move it away to start with an empty state") from None
    if meta.get("format") not in READABLE:
        raise ConfigError(f"{path}: checkpoint format {meta.get('format')!r}, this version reads "
                          f"{' and '.join(map(str, READABLE))}; "
                          "move it away to start with an empty state")
    want = layout(site)
    for key, value in want.items():
        if meta["layout"].get(key) != value:
            raise ConfigError(f"{path}: checkpoint made for {key} {meta['layout'].get(key)!r}, but {site.path} "
                              f"configures {value!r}; move it away to start with an empty state")
    try:
        pipeline.import_state(arrays, meta["pipeline"], now_rx=now_rx)
    except (KeyError, ValueError, TypeError) as error:
        raise ConfigError(f"{path}: checkpoint does not fit this pipeline ({type(error).__name__}: {error}); "
                          "move it away to start with an empty state") from None
    return True
