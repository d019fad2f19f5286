"""Per-track geofence state in arrays indexed by slot, and the kernel that scans an update for events.

A slot holds one track's decided country, zone memberships (with entry time and
whether its dwell alert fired), whether its approach warning fired, alerts held
until confirmation, and the path since the last country decision (a ring buffer
of at most ``MAX_PATH`` estimates).  Track ids map to slots through two sorted
arrays, so an update of n tracks finds its slots with one ``searchsorted``.

:func:`scan_events` is the per-update pass over all n tracks: append each
estimate to its path; flag an *event* where Python has work to do — a country
other than the decided one passes the high threshold, a zone is entered
(P > high) or left (P < low), a dwell falls due, or held alerts can be released;
and take a track's *first* country decision (no alert) on the spot.
:func:`approach_rays` picks the tracks due an approach test and their straight
paths over the horizon, in one pass as well.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from geo.alerts import Alert

__all__ = ["Slots", "scan_events", "approach_rays", "MAX_PATH"]

MAX_PATH = 128


class Slots:
    """Geofence state of every known track (slots are reused after :meth:`free`)."""

    def __init__(self, n_zones: int, capacity: int = 256) -> None:
        self._ids = np.empty(0, np.int64)  # known track ids, sorted …
        self._slot_of = np.empty(0, np.int64)  # … and their slots
        self._free: list[int] = []
        self.pending: dict[int, list[Alert]] = {}
        self.n_zones = n_zones
        self._alloc(capacity)

    def __len__(self) -> int:
        return int(self._ids.size)

    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "country", None)
        fields = {"country": np.full(capacity, -1, np.int64), "warned": np.zeros(capacity, bool),
                  "has_pending": np.zeros(capacity, bool),
                  "member": np.zeros((capacity, self.n_zones), bool), "dwelled": np.zeros((capacity, self.n_zones), bool),
                  "entered": np.zeros((capacity, self.n_zones)), "path_xy": np.zeros((capacity, MAX_PATH, 2)),
                  "path_t": np.zeros((capacity, MAX_PATH)), "path_len": np.zeros(capacity, np.int64),
                  "path_head": np.zeros(capacity, np.int64)}
        for name, array in fields.items():
            if old is not None:
                array[: old.size] = getattr(self, name)
            setattr(self, name, array)
        start = 0 if old is None else old.size
        self._free += range(capacity - 1, start - 1, -1)  # the lowest new slot is popped first

    def _find(self, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in the sorted ids, known?) of each track id."""
        pos = np.searchsorted(self._ids, track_ids)
        if self._ids.size == 0:
            return pos, np.zeros(track_ids.size, bool)
        return pos, self._ids[np.minimum(pos, self._ids.size - 1)] == track_ids

    def slots(self, track_ids: np.ndarray) -> np.ndarray:
        """The slot of each track, new tracks getting fresh ones."""
        pos, known = self._find(track_ids)
        out = np.full(track_ids.size, -1, np.int64)
        out[known] = self._slot_of[pos[known]]
        new = np.flatnonzero(~known)
        if new.size:
            while len(self._free) < new.size:
                self._alloc(2 * self.country.size)
            out[new] = [self._free.pop() for _ in range(new.size)]
            ids = np.concatenate((self._ids, track_ids[new]))
            order = np.argsort(ids, kind="stable")
            self._ids, self._slot_of = ids[order], np.concatenate((self._slot_of, out[new]))[order]
        return out

    def free(self, track_ids: np.ndarray) -> None:
        """Forget these tracks (unknown ids are ignored)."""
        track_ids = np.asarray(track_ids, np.int64)
        pos, known = self._find(track_ids)
        if not known.any():
            return
        pos = pos[known]
        slots = self._slot_of[pos]
        self.country[slots] = -1
        self.warned[slots] = self.has_pending[slots] = False
        self.member[slots] = self.dwelled[slots] = False
        self.path_len[slots] = self.path_head[slots] = 0
        for slot in slots.tolist():
            self.pending.pop(slot, None)
            self._free.append(slot)
        keep = np.ones(self._ids.size, bool)
        keep[pos] = False
        self._ids, self._slot_of = self._ids[keep], self._slot_of[keep]

    #: per-slot columns a checkpoint keeps row by row (the paths are kept point by point)
    _ROWS = ("country", "warned", "has_pending", "member", "dwelled", "entered", "path_len")

    def export_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The known tracks' slots as arrays, and the held alerts as plain data (for a checkpoint).

        Compact: the k-th known track id (sorted) is row k, free slots are left out, and the
        paths are stored end to end, oldest point first (``path_len`` points each): at
        10,000 tracks in a table grown to 16,384 slots the whole-table layout was 48 MB a
        checkpoint, most of it empty rings (``benchmarks/live_scale.py``).
        """
        used = self._slot_of
        lengths = self.path_len[used]
        slot = np.repeat(used, lengths)
        age = np.arange(slot.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # 0 = the oldest
        ring = (np.repeat(self.path_head[used] - lengths, lengths) + age) % MAX_PATH
        arrays = {name: getattr(self, name)[used] for name in self._ROWS}
        arrays.update(ids=self._ids, path_xy=self.path_xy[slot, ring], path_t=self.path_t[slot, ring])
        row_of = {int(s): k for k, s in enumerate(used.tolist())}
        pending = {str(row_of[slot]): [_alert_data(a) for a in alerts] for slot, alerts in self.pending.items()}
        return arrays, {"pending": pending, "capacity": int(self.country.size)}

    def import_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Take over a state made by :meth:`export_state` (copies the arrays): track k in slot k.
        A checkpoint of format 1 (the whole table, slot by slot) is read too."""
        if "slot_of" in arrays:
            arrays, meta = _compact(arrays, meta)
        if arrays["member"].shape[1] != self.n_zones:
            raise ValueError(f"geofence: {arrays['member'].shape[1]} zones in the checkpoint, {self.n_zones} configured")
        ids = np.array(arrays["ids"], np.int64)
        n = ids.size
        self._free = []
        del self.country  # a fresh table, not grown from this one
        self._alloc(max(int(meta["capacity"]), n, 1))
        self._free = self._free[: self.country.size - n]  # slots 0 … n−1 are taken
        for name in self._ROWS:
            getattr(self, name)[:n] = arrays[name]
        lengths = self.path_len[:n]
        slot = np.repeat(np.arange(n), lengths)
        age = np.arange(slot.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        self.path_xy[slot, age] = arrays["path_xy"]
        self.path_t[slot, age] = arrays["path_t"]
        self.path_head[:n] = lengths % MAX_PATH
        self._ids, self._slot_of = ids, np.arange(n, dtype=np.int64)
        self.pending = {int(row): [Alert(**{**a, "recipients": tuple(a["recipients"])}) for a in alerts]
                        for row, alerts in meta["pending"].items()}

    def path(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """(xy, t) of one slot's path, oldest first."""
        order = (self.path_head[slot] - self.path_len[slot] + np.arange(self.path_len[slot])) % MAX_PATH
        return self.path_xy[slot, order], self.path_t[slot, order]

    def decide(self, slot: int, country: int) -> None:
        """A new country for a slot: re-arm the approach warning, keep only the newest path point."""
        self.country[slot] = country
        self.warned[slot] = False
        self.path_len[slot] = 1


def _compact(whole: dict[str, np.ndarray], meta: dict) -> tuple[dict[str, np.ndarray], dict]:
    """A format-1 export (every slot, rings as they lie, pending alerts keyed by slot) in the compact
    layout of :meth:`Slots.export_state`."""
    table = Slots(whole["member"].shape[1], capacity=1)
    for name in (*Slots._ROWS, "path_xy", "path_t", "path_head"):
        setattr(table, name, np.asarray(whole[name]))
    table._ids, table._slot_of = np.asarray(whole["ids"], np.int64), np.asarray(whole["slot_of"], np.int64)
    arrays, compact = table.export_state()
    row_of = {int(slot): k for k, slot in enumerate(table._slot_of.tolist())}
    compact["pending"] = {str(row_of[int(slot)]): alerts for slot, alerts in meta["pending"].items()}
    return arrays, compact


def _alert_data(alert: Alert) -> dict:
    """An alert's fields as JSON-able data (numpy scalars become Python ones)."""
    data = dataclasses.asdict(alert)
    data["recipients"] = list(alert.recipients)
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in data.items()}


@njit(cache=True)
def scan_events(probability, slots, t, xy, confirmed, countries, zones, dwell_s, hi, lo,
                country, warned, has_pending, member, dwelled, entered, path_xy, path_t, path_len, path_head):
    """Append each estimate to its path and flag the tracks with an event; first decisions in place.

    ``probability`` is (n, jurisdictions); ``countries``/``zones`` index its columns.
    A first country decision sets ``country`` and keeps only the newest path point.
    """
    n = slots.shape[0]
    event = np.zeros(n, np.bool_)
    for k in range(n):
        s = slots[k]
        head = path_head[s]
        path_xy[s, head, 0], path_xy[s, head, 1] = xy[k, 0], xy[k, 1]
        path_t[s, head] = t
        path_head[s] = (head + 1) % path_xy.shape[1]
        path_len[s] = min(path_len[s] + 1, path_xy.shape[1])
        hit = confirmed[k] and has_pending[s]
        for i in range(zones.shape[0]):
            p = probability[k, zones[i]]
            if member[s, i]:
                hit |= p < lo or (not dwelled[s, i] and t - entered[s, i] >= dwell_s[i])
            else:
                hit |= p > hi
        if countries.shape[0]:
            best = 0
            for c in range(1, countries.shape[0]):
                if probability[k, countries[c]] > probability[k, countries[best]]:
                    best = c
            if probability[k, countries[best]] > hi and countries[best] != country[s]:
                if country[s] < 0 and not hit:  # a first decision raises no alert
                    country[s] = countries[best]
                    warned[s] = False
                    path_len[s] = 1
                else:
                    hit = True
        event[k] = hit
    return event


@njit(cache=True)
def approach_rays(x, slots, confirmed, country, warned, horizon, min_speed):
    """The tracks that may need an approach warning — confirmed, not yet warned, in a country,
    moving at least ``min_speed`` — and their straight paths over ``horizon`` seconds.

    Returns (rows k, starts (m, 2), ends (m, 2), country of each).
    """
    n = slots.shape[0]
    rows = np.empty(n, np.int64)
    m = 0
    for k in range(n):
        s = slots[k]
        if confirmed[k] and not warned[s] and country[s] >= 0 and x[k, 2] ** 2 + x[k, 3] ** 2 >= min_speed**2:
            rows[m] = k
            m += 1
    starts, ends, owners = np.empty((m, 2)), np.empty((m, 2)), np.empty(m, np.int64)
    for i in range(m):
        k = rows[i]
        starts[i, 0], starts[i, 1] = x[k, 0], x[k, 1]
        ends[i, 0], ends[i, 1] = x[k, 0] + x[k, 2] * horizon, x[k, 1] + x[k, 3] * horizon
        owners[i] = country[slots[k]]
    return rows[:m], starts, ends, owners
