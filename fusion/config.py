"""The site file (interface §5), read once into frozen, typed objects.

Every problem stops start-up with :class:`ConfigError`, whose message names the
file, the field and what is wrong, e.g.::

    site.toml: sensors[1].range_sigma_m: expected `float` > 0.0, got -3.0
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from fusion.federation.agreement import FederationConfig, federation_problem
from geo.config import GeofenceConfig
from geo.frame import LocalFrame
from geo.jurisdictions import Jurisdiction, JurisdictionError, load_jurisdictions
from sensors.ingest import IngestLimits, format_validation_error
from sensors.normalize import SensorModel
from sensors.schema import Lat, Lon
from sensors.specs import SensorSpec
from tracking.config import TrackerConfig

__all__ = ["ConfigError", "Site", "SiteFile", "load_site", "WebConfig", "CotConfig"]

Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class ConfigError(ValueError):
    """A site that cannot start; the message names the file and the field."""


class Origin(Struct, frozen=True, forbid_unknown_fields=True):
    lat: Lat
    lon: Lon
    alt_m: Annotated[float, Meta(ge=-1000.0, le=20000.0)] = 0.0


class SiteSection(Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    node_id: Name
    origin: Origin
    jurisdictions: str


class MqttConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 1883
    prefix: Annotated[str, Meta(pattern=r"^[^#+]+[^/#+]$")] = "borderfusion/v1"
    username: str | None = None
    #: a file holding the password (relative to the site file); needs ``username``; must be
    #: readable by its owner only (mode 0600), or start-up stops
    password_file: str | None = None
    #: TLS is used when ``tls_ca`` or ``tls_cert`` is set.  The broker's certificate is checked
    #: against ``tls_ca`` when given, else against the system's CA store; never plaintext.
    tls_ca: str | None = None
    #: client certificate and its key, always together
    tls_cert: str | None = None
    tls_key: str | None = None
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    #: how long the broker keeps the pipeline's session (and its QoS 1 queue) while it is away
    session_expiry_s: Annotated[int, Meta(ge=0, le=7 * 86400)] = 3600
    #: on-disk outbox of alerts not yet acknowledged by the broker (relative to the site file)
    outbox: str = "outbox"
    #: bounded input queue between the network thread and the pipeline, in messages; also the
    #: most rejections that may wait for the bulk connection
    queue_size: Annotated[int, Meta(ge=10, le=10_000_000)] = 20000
    #: the same input queue's bound in payload bytes (at least 1 MiB: four of the largest
    #: accepted payloads); what does not fit is shed and counted, like a full queue
    queue_bytes: Annotated[int, Meta(ge=1 << 20, le=1 << 40)] = 64 << 20
    #: input that waited longer than this in the queue is shed, not processed (0: never), so that
    #: alert latency stays bounded under overload; once the queue is half full, the sensor with the
    #: most queued messages is shed first
    max_input_age_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 2.0
    #: what the broker acknowledged within this many seconds before a connection was lost is sent
    #: again once it is back (alerts by the node, raw messages by ``replay --publish``): Mosquitto
    #: acknowledges a message before it saves it, every ``autosave_interval`` s, so a broker killed
    #: forgets what it acknowledged since its last save.  At least ``autosave_interval`` + 3 s
    #: (configs/mosquitto/mosquitto.conf); 0 trusts the acknowledgement
    resend_window_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 5.0


class IngestConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: detections are held this long to be put in sensor-time order (radio links: ≤ 2 s)
    reorder_window_s: Annotated[float, Meta(ge=0.0, le=600.0)] = 3.0
    #: a message stamped further ahead of its receive time is rejected
    max_future_s: Annotated[float, Meta(gt=0.0, le=86400.0)] = 30.0
    #: a message whose clock runs further ahead of the other sensors' clocks (compared through the
    #: receive time) is rejected, so that it cannot make their data "too old" (sensors.clocks)
    max_clock_lead_s: Annotated[float, Meta(gt=0.0, le=86400.0)] = 2.0


HostPort = Annotated[str, Meta(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")]


class CotConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[outputs.cot]``: confirmed tracks and alerts as Cursor-on-Target events to TAK (see :mod:`fusion.interop.cot`)."""

    #: ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``udp://HOST:PORT`` (a multicast group for a field LAN)
    url: Annotated[str, Meta(pattern=r"^(tcp|tls|udp)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")]
    #: the most events sent per second, alerts first (a field radio link carries little)
    max_events_per_s: Annotated[float, Meta(gt=0.0, le=100_000.0)] = 10.0
    #: a track is re-sent at most this often (its last event stays on the TAK map until stale)
    track_interval_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 5.0
    #: added to a track's coasting horizon for its event's stale time
    stale_margin_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 10.0
    #: how long an alert event stays on the TAK map
    alert_stale_s: Annotated[float, Meta(gt=0.0, le=86400.0)] = 600.0
    #: CoT affiliation per jurisdiction id (f friend, n neutral, u unknown, s suspect, h hostile); default u
    affiliation: dict[str, Literal["f", "n", "u", "s", "h"]] = {}
    #: multicast hop limit (udp to a multicast group)
    multicast_ttl: Annotated[int, Meta(ge=1, le=255)] = 1
    #: TLS (``tls://``): the server's CA (else the system store), and a client certificate and key
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


class OutputsConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: track snapshots per second of data time
    tracks_rate_hz: Annotated[float, Meta(gt=0.0, le=100.0)] = 1.0
    #: include tentative tracks in snapshots
    include_tentative: bool = False
    #: the TAK feed, off unless the table is given
    cot: CotConfig | None = None


class WebConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[web]``: the live map served by the node (see :mod:`fusion.web`)."""

    #: HOST:PORT to listen on (HTTP, or HTTPS with ``tls_cert`` and ``tls_key``)
    listen: HostPort = "127.0.0.1:8080"
    tls_cert: str | None = None
    tls_key: str | None = None
    #: a TOML file of ``[[operator]] token = "…", agency = "…"`` (mode 0600); without it every
    #: browser sees the whole picture (allowed only on a loopback address)
    tokens: str | None = None
    #: an agency sees tracks inside, or within this distance of, the jurisdictions it receives alerts of
    track_margin_m: Annotated[float, Meta(ge=0.0, le=1_000_000.0)] = 2000.0
    #: the newest alerts kept for a browser that connects
    recent_alerts: Annotated[int, Meta(ge=1, le=100_000)] = 500
    #: acknowledgements database (relative to the site file); default beside the outbox
    acks: str | None = None
    #: a local PMTiles (v3) file of raster tiles (PNG, JPEG or WebP) drawn under the map; the
    #: map never loads online tiles
    basemap: str | None = None


class CheckpointConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[checkpoint]``: the live node's state on disk (:mod:`fusion.live.checkpoint`)."""

    #: folder of ``<node_id>.npz`` (relative to the site file)
    path: str = "checkpoint"
    #: seconds between checkpoints while input arrives; raw input is acknowledged to the broker
    #: only once a checkpoint holds it, so the broker's ``max_inflight_messages`` must exceed
    #: the input rate times this interval
    interval_s: Annotated[float, Meta(ge=0.05, le=3600.0)] = 1.0
    #: a checkpoint is also written as soon as this many input messages wait for their acknowledgement
    max_unacknowledged: Annotated[int, Meta(ge=1, le=10_000_000)] = 1000


class SiteFile(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    site: SiteSection
    mqtt: MqttConfig = MqttConfig()
    sensors: Annotated[list[SensorSpec], Meta(min_length=1)]
    ingest: IngestConfig = IngestConfig()
    tracker: TrackerConfig = TrackerConfig()
    geofence: GeofenceConfig = GeofenceConfig()
    outputs: OutputsConfig = OutputsConfig()
    web: WebConfig | None = None
    checkpoint: CheckpointConfig = CheckpointConfig()
    federation: FederationConfig = FederationConfig()


@dataclass(frozen=True, eq=False)
class Site:
    """Everything the pipeline needs, checked and placed in the local frame."""

    path: Path
    config: SiteFile
    frame: LocalFrame
    sensors: tuple[SensorModel, ...]
    jurisdictions: tuple[Jurisdiction, ...]

    @property
    def name(self) -> str:
        return self.config.site.name

    @property
    def node_id(self) -> str:
        return self.config.site.node_id

    @property
    def ingest_limits(self) -> IngestLimits:
        return IngestLimits(max_future_s=self.config.ingest.max_future_s,
                            max_clock_lead_s=self.config.ingest.max_clock_lead_s)

    def resolve(self, relative: str) -> Path:
        """A path from the site file, relative to that file."""
        return (self.path.parent / relative).resolve()


def _mqtt_problem(mqtt: MqttConfig) -> str | None:
    """The first ``[mqtt]`` setting that would silently weaken security, as ``field: why``; None if none."""
    if mqtt.password_file and not mqtt.username:
        return ("mqtt.password_file: set mqtt.username too; without a user name the password is never "
                "sent and the node would connect anonymously")
    if mqtt.tls_key and not mqtt.tls_cert:
        return "mqtt.tls_key: set mqtt.tls_cert too (the client certificate of that key)"
    if mqtt.tls_cert and not mqtt.tls_key:
        return "mqtt.tls_cert: set mqtt.tls_key too (the private key of that certificate)"
    return None


def _web_problem(config: SiteFile) -> str | None:
    """The first ``[web]`` / ``[outputs.cot]`` setting that cannot work, as ``field: why``; None if none."""
    web, cot = config.web, config.outputs.cot
    if web is not None and bool(web.tls_cert) != bool(web.tls_key):
        return "web.tls_cert, web.tls_key: give both (the server certificate and its private key) or neither"
    if web is not None and web.tokens is None:
        host = web.listen.rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1"):
            return (f"web.tokens: needed when web.listen is not a loopback address (got {web.listen!r}): "
                    "without a tokens file every browser would see every agency's tracks and alerts")
    if cot is not None and bool(cot.tls_cert) != bool(cot.tls_key):
        return "outputs.cot.tls_cert, outputs.cot.tls_key: give both or neither"
    if cot is not None and not cot.url.startswith("tls://") and (cot.tls_ca or cot.tls_cert):
        return "outputs.cot.tls_ca: TLS settings need a tls:// url"
    return None


def _error_text(error: msgspec.ValidationError, document: dict) -> str:
    import json

    return format_validation_error(error, json.dumps(document, default=str).encode(), SiteFile)


def load_site(path: str | Path) -> Site:
    """Read and check a site file and its jurisdictions; raise :class:`ConfigError`."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        config = msgspec.convert(document, SiteFile)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{path}: {_error_text(error, document)}") from None
    if problem := _mqtt_problem(config.mqtt):
        raise ConfigError(f"{path}: {problem}")
    seen: set[str] = set()
    for i, spec in enumerate(config.sensors):
        if spec.id in seen:
            raise ConfigError(f"{path}: sensors[{i}].id: duplicate sensor id {spec.id!r}")
        seen.add(spec.id)
    e = config.tracker.existence
    if not e.delete < e.show <= e.release:
        raise ConfigError(f"{path}: tracker.existence: needs delete < show <= release "
                          f"(got delete {e.delete}, show {e.show}, release {e.release})")
    if config.tracker.max_capacity < config.tracker.capacity:
        raise ConfigError(f"{path}: tracker.max_capacity: must be at least tracker.capacity")
    imm = config.tracker.imm
    if not imm.quiet_scale < imm.moderate_scale < imm.manoeuvre_scale and imm.moderate_scale > 0.0:
        raise ConfigError(f"{path}: tracker.imm.moderate_scale: must lie between quiet_scale and manoeuvre_scale "
                          f"(got {imm.quiet_scale}, {imm.moderate_scale}, {imm.manoeuvre_scale}), or be 0 for "
                          "no moderate model")
    if not imm.quiet_scale < imm.manoeuvre_scale:
        raise ConfigError(f"{path}: tracker.imm.manoeuvre_scale: must be above quiet_scale "
                          f"(got {imm.manoeuvre_scale} and {imm.quiet_scale}): the tracker gates with the most agile model")
    if problem := _web_problem(config):
        raise ConfigError(f"{path}: {problem}")
    if config.geofence.outside_probability >= config.geofence.inside_probability:
        raise ConfigError(f"{path}: geofence.outside_probability: must be below geofence.inside_probability")
    origin = config.site.origin
    frame = LocalFrame(origin.lat, origin.lon, origin.alt_m)
    sensors = tuple(SensorModel.place(i, spec, frame) for i, spec in enumerate(config.sensors))
    for sensor in sensors:
        distance = math.hypot(sensor.east_m, sensor.north_m)
        if distance > 200_000:
            raise ConfigError(f"{path}: sensors[{sensor.index}]: {distance / 1000:.0f} km from the site origin "
                              "(limit 200 km); is lat/lon swapped?")
    try:
        jurisdictions = load_jurisdictions(path.parent / config.site.jurisdictions, frame)
    except JurisdictionError as error:
        raise ConfigError(f"{error} (site.jurisdictions in {path})") from None
    kinds = {j.id: j.kind for j in jurisdictions}
    if problem := federation_problem(config.federation, config.site.node_id, kinds, path.parent):
        raise ConfigError(f"{path}: {problem}")
    return Site(path=path.resolve(), config=config, frame=frame, sensors=sensors, jurisdictions=jurisdictions)
