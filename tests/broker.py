"""A real Mosquitto broker on a free loopback port, for integration tests."""

from __future__ import annotations

import contextlib
import getpass
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

PREFIX = "borderfusion/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("the mosquitto broker is not installed (tests/run.sh installs it)")


class Broker:
    def __init__(self, directory: Path, extra: str = "", max_inflight: int = 100, per_listener: bool = False) -> None:
        self.directory = directory
        self.per_listener = per_listener
        self.max_inflight = max_inflight
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen | None = None

    def start(self) -> Broker:
        conf = self.directory / "mosquitto.conf"
        (self.directory / "data").mkdir(exist_ok=True)
        conf.write_text(
            ("per_listener_settings true\n" if self.per_listener else "")
            + f"listener {self.port} 127.0.0.1\n"
            f"max_queued_messages 100000\nmax_queued_bytes 0\nmax_inflight_messages {self.max_inflight}\n"
            "set_tcp_nodelay true\n"
            f"persistence true\npersistence_location {self.directory / 'data'}/\n"
            # run as whoever runs the tests (as root, mosquitto would drop to user 'mosquitto',
            # who cannot read pytest's private temporary folders)
            f"user {getpass.getuser()}\n"
            f"{self.extra}\n")
        if "allow_anonymous" not in self.extra:
            conf.write_text(conf.read_text() + "allow_anonymous true\n")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.directory / "broker.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError((self.directory / "broker.log").read_text())
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def kill(self) -> None:
        """SIGKILL: no final save; the broker's state on disk is that of its last autosave."""
        if self.process and self.process.poll() is None:
            self.process.kill()  # by its own pid
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # by its own pid
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def write_site(directory: Path, port: int, *, outbox: Path, mqtt_extra: str = "") -> Path:
    """The demo site config, pointed at a test broker; returns the new site.toml."""
    from tests.conftest import DEMO_SITE

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_SITE.parent / "jurisdictions.geojson", directory)
    text = DEMO_SITE.read_text().replace("port = 1883", f'port = {port}\noutbox = "{outbox}"\n{mqtt_extra}')
    (directory / "site.toml").write_text(text)
    return directory / "site.toml"


class Collector:
    """A subscriber that keeps every message of its topics."""

    def __init__(self, port: int, topics: list[str], client_id: str) -> None:
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)

        def on_connect(c, u, f, rc, p):
            for topic in topics:
                c.subscribe(topic, qos=1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            body = {"raw": message.payload.decode(errors="replace")}
        with self._lock:
            self.messages.append((message.topic, body))

    def of(self, topic: str) -> list[dict]:
        with self._lock:
            return [b for t, b in self.messages if t == topic]

    def wait_for(self, predicate, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_node(site_path):
    process = subprocess.Popen([sys.executable, "-m", "fusion.cli", "run", "--config", str(site_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process


@contextlib.contextmanager
def running_node(site_path):
    """``borderfusion run`` in a subprocess, killed on the way out if the test left it running."""
    process = start_node(site_path)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_online(collector: Collector, process, timeout=60.0) -> None:
    ok = collector.wait_for(lambda: any(s.get("state") == "online" for s in collector.of(f"{PREFIX}/status/edge-1"))
                            or process.poll() is not None, timeout)
    assert ok and process.poll() is None, process.stderr.read() if process.poll() is not None else "not online"


def stop_node(process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


def persistent_collector(port, topics, client_id):
    """A consumer with a persistent session: the broker queues its QoS 1 alerts while it is away."""
    c = Collector.__new__(Collector)
    c.messages, c._lock = [], threading.Lock()
    ready = threading.Event()
    c.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.client.on_connect = lambda cl, u, f, rc, p: [cl.subscribe(t, qos=1) for t in topics]
    c.client.on_subscribe = lambda *a: ready.set()
    c.client.on_message = c._on_message
    c.client.reconnect_delay_set(0.2, 1)
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.client.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.client.loop_start()
    assert ready.wait(10)
    return c


class Link:
    """A TCP relay between a client and the broker that can stall one direction.

    ``stall_upstream()`` stops forwarding client → broker (the client's PUBACKs and
    publishes pile up unsent, as on a radio link that fails one way) while the
    broker → client direction keeps flowing.
    """

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall_upstream(self) -> None:
        self._flowing.clear()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.broker_port))
            self._sockets += [down, up]
            threading.Thread(target=self._pump, args=(down, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while True:
                if upstream:
                    self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                if upstream and not self._flowing.is_set():
                    continue  # the link died with these bytes on it
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()
        self._flowing.set()
        for s in self._sockets:
            s.close()


def forget_session(port: int, client_id: str) -> None:
    """End the broker's persistent session of ``client_id`` (its queued input is gone)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    done = threading.Event()
    c.on_connect = lambda *a: done.set()
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    assert done.wait(10)
    c.disconnect()
    c.loop_stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def agency_watchers(port: int, alerts, tag: str) -> dict[str, Collector]:
    """A durable consumer per agency that the alerts reach, keyed by agency id."""
    agencies = sorted({a for alert in alerts for a in alert.recipients})
    return {a: persistent_collector(port, [f"{PREFIX}/alerts/{a}"], f"{tag}-{a}") for a in agencies}


def alert_ids(watchers: dict[str, Collector]) -> dict[str, set[str]]:
    """The alert ids each agency's watcher has received."""
    return {a: {m["alert_id"] for m in w.of(f"{PREFIX}/alerts/{a}")} for a, w in watchers.items()}


def write_passwords(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file for ``users`` (name → password), made with mosquitto_passwd."""
    for i, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(path), user, password], check=True)
    return path


def make_certificates(directory) -> dict[str, str]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt")
    for name, extra in (("server", ["-addext", "subjectAltName=IP:127.0.0.1"]), ("client", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", *extra)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-copy_extensions", "copy", "-out", f"{name}.crt")
    return {name: str(directory / name) for name in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}
