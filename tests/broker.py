"""A real Mosquitto broker on a free loopback port, for integration tests."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


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
    def __init__(self, directory: Path, extra: str = "") -> None:
        self.directory = directory
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen | None = None

    def start(self) -> "Broker":
        conf = self.directory / "mosquitto.conf"
        (self.directory / "data").mkdir(exist_ok=True)
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "max_queued_messages 100000\nmax_queued_bytes 0\nmax_inflight_messages 100\n"
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

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # by its own pid
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
