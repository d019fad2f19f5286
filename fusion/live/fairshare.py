"""Admission of input by rate, lightest sensors first: a flooding sensor loses its own data, before decoding.

Under a flood the expensive part of a message is not where it waits: a radar scan is
decoded in a fraction of a millisecond, held for the reorder window, and only then
costs the tracker its time, in bursts as the data clock moves (a single release of
held flood scans took 2 s in ``benchmarks/live_flood.py``).  A bound on what waits in
the input queue (in messages, bytes or estimated work) therefore does not bound the
work admitted; a bound on the *rate* admitted does.  The rate estimates and the
probabilistic drop are those of core-stateless fair queueing (Stoica, Shenker & Zhang,
SIGCOMM 1998), with the sensors as flows, in bytes (payload + :data:`MESSAGE_BYTES`
for a message's fixed cost); the allocation is not max-min but lightest first:

* each sensor's arrival rate, from the gap T since its previous message and an
  averaging constant K (:data:`AVERAGING_S`):  r ← (1 − e^(−T/K)) · size/T + e^(−T/K) · r;
* the budget B, the input rate the node is given under overload, set once a window
  (≥ :data:`CAPACITY_WINDOW_S`) by feedback on the wait (:meth:`FairShare.served`):
  when a message processed in the window had waited longer than ``target_wait_s``
  while the sensors sent more than was processed (a growing backlog, not a
  momentary stall), B ← max(min(:data:`DECREASE` × B, the rate processed), B/4);
  when every wait stayed under half the
  target, B grows by :data:`INCREASE` a window, up to ``HEADROOM`` × the bytes processed per busy second (every
  message's whole cost, releases and checkpoints included), where it starts.  B
  never falls below what all sensors but the heaviest send: rate shedding is for
  the heaviest; if the others alone are too much, the queue's own bounds act.
  (Cutting B to a fraction of the rate processed in the window alone was tried: a
  window spent in one long release processes almost nothing, and B collapsed to
  30 KB/s; ×0.7 alone took seconds to come down from a budget measured on light
  traffic, and the flood it let in meanwhile gave p99 latencies of 4–7 s.)  A model
  of the cost per byte alone was tried and measured 2–10× off under a flood: the
  flood's scans cost little when rejected and a lot when the tracker gets them,
  and the main thread's time is not the only limit (the network thread shares the
  GIL, and the machine its cores);
* while the sensors together send more than B, the
  sensors are taken from the lightest up and keep all their data while their rates
  add up to at most B; the heavier rest share what remains, R, max-min (the level α
  with Σ_rest min(r_s, α) = R), and a message of a sensor sending r_s > α is shed
  with probability 1 − α / r_s, so that sensor gets through about α.

Max-min over all sensors (α over everyone) was tried first: with two ordinary
sensors taking 2/3 of the capacity (a log re-published at 20×), the flooder's equal
share took a fifth of the heavier one's data (``tests/test_live_flood.py``);
lightest first, the flooder pays alone.  A heavy but honest sensor is still cut
before light ones when the node cannot take everyone, which is the point: whoever
sends the most loses first.  ``admit`` runs on the network thread under the inbox's
mutex, ``served`` on the main thread; they share only the float ``budget_Bps``.
"""

from __future__ import annotations

import math
import random

__all__ = ["FairShare", "MESSAGE_BYTES", "lightest_first", "revised_budget", "water_fill"]

#: a message's fixed processing cost, in payload bytes
MESSAGE_BYTES = 512
#: K, the time constant of the per-sensor rate averages (s): a burst shorter than this is not a flood
AVERAGING_S = 1.0
#: the budget is revised once per this much wall time (s)
CAPACITY_WINDOW_S = 0.5
#: a window whose waits were too long sets the budget to this fraction of the rate processed
DECREASE = 0.7
#: a window whose waits all stayed under half the target lets the budget grow by this factor
INCREASE = 1.2
#: arrivals this much above the rate processed are a growing backlog, not a stall
BACKLOG_RATIO = 1.2
#: the fraction of the capacity admitted under overload: room for the network thread, for bursts, and for
#: a flood's admitted clutter making every scan dearer (more tentative tracks to gate) than when measured
HEADROOM = 0.8
#: a sensor silent this long no longer takes a share (s)
ACTIVE_S = 3.0


class FairShare:
    def __init__(self, target_wait_s: float = 0.5, seed: int = 0) -> None:
        self.target_wait_s = target_wait_s
        self.budget_Bps = 0.0  # B; 0: not measured yet, nothing shed by rate
        self.fair_Bps = math.inf  # α, what each sensor of the heavier rest gets (inf: no overload)
        self._protected_Bps = math.inf  # sensors sending at most this keep all their data
        self._rates: dict[str, tuple[float, float]] = {}  # sensor → (bytes/s, time of its last message)
        self._fair_at = -math.inf
        self._window: list[float] = [math.nan, 0.0, 0.0, 0.0]  # start time, busy s, bytes served, longest wait s
        self._random = random.Random(seed)

    def served(self, now: float, seconds: float, payload_bytes: int, waited_s: float = 0.0) -> None:
        """The main thread spent ``seconds`` (wall) on a message of ``payload_bytes`` that had waited
        ``waited_s`` in the queue, at time ``now``: revise the budget once a window."""
        start, busy_s, size, longest_s = self._window
        if math.isnan(start):
            start = now
        busy_s, size, longest_s = busy_s + seconds, size + payload_bytes + MESSAGE_BYTES, max(longest_s, waited_s)
        if now - start >= CAPACITY_WINDOW_S and busy_s > 0:
            rates = sorted(self.rates(now).values())
            self.budget_Bps = max(revised_budget(self.budget_Bps, size / (now - start), size / busy_s,
                                                 sum(rates), longest_s / self.target_wait_s), sum(rates[:-1]))
            start, busy_s, size, longest_s = now, 0.0, 0.0, 0.0
        self._window = [start, busy_s, size, longest_s]

    def admit(self, sensor: str, payload_bytes: int, now: float) -> bool:
        """False if this message of ``sensor`` (arriving at ``now``) is to be shed for its rate."""
        size = payload_bytes + MESSAGE_BYTES
        rate, last = self._rates.get(sensor, (0.0, now - ACTIVE_S))
        gap_s = max(now - last, 1e-6)
        decay = math.exp(-gap_s / AVERAGING_S)
        rate = (1.0 - decay) * size / gap_s + decay * rate
        self._rates[sensor] = (rate, now)
        if now - self._fair_at > 0.1:
            self._fair_at = now
            self._protected_Bps, self.fair_Bps = self._shares(now)
        return rate <= max(self._protected_Bps, self.fair_Bps) or self._random.random() < self.fair_Bps / rate

    def rates(self, now: float) -> dict[str, float]:
        """Arrival rate (bytes/s) of each sensor heard within :data:`ACTIVE_S`."""
        return {s: r for s, (r, last) in self._rates.items() if now - last <= ACTIVE_S}

    def _shares(self, now: float) -> tuple[float, float]:
        """(rate up to which sensors keep everything, α of the rest) for the active sensors (inf, inf: all fit)."""
        for sensor in [s for s, (_, last) in self._rates.items() if now - last > 10 * ACTIVE_S]:
            del self._rates[sensor]  # bounded by the sensors heard lately
        if not self.budget_Bps:
            return math.inf, math.inf
        return lightest_first(sorted(self.rates(now).values()), self.budget_Bps)


def revised_budget(budget_Bps: float, processed_Bps: float, busy_Bps: float, arriving_Bps: float,
                   wait_ratio: float) -> float:
    """The next window's budget (see the module's docstring); ``busy_Bps``: bytes per busy second;
    ``wait_ratio``: the window's longest wait over the target."""
    ceiling = HEADROOM * busy_Bps
    if not budget_Bps:
        return ceiling
    if wait_ratio > 1.0 and arriving_Bps > BACKLOG_RATIO * processed_Bps:
        return max(min(DECREASE * budget_Bps, processed_Bps), budget_Bps / 4)
    if wait_ratio < 0.5:
        return min(INCREASE * budget_Bps, max(ceiling, budget_Bps))
    return budget_Bps


def lightest_first(rates_ascending: list[float], budget: float) -> tuple[float, float]:
    """(protected, α): the sensors from the lightest up whose rates add up to ≤ ``budget`` keep all
    (rate ≤ protected); the rest share the remainder max-min (α).  (inf, inf) when all fit."""
    remaining, protected = budget, 0.0
    for i, rate in enumerate(rates_ascending):
        if rate > remaining:
            return protected, water_fill(rates_ascending[i:], remaining)
        remaining -= rate
        protected = rate
    return math.inf, math.inf


def water_fill(rates_ascending: list[float], capacity: float) -> float:
    """The level α with Σ min(r, α) = ``capacity`` (inf if Σ r ≤ capacity)."""
    remaining = capacity
    for i, rate in enumerate(rates_ascending):
        others = len(rates_ascending) - i
        if rate * others > remaining:
            return remaining / others
        remaining -= rate
    return math.inf
