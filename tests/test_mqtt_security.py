"""Security settings take effect or stop start-up with a message naming the file and the field.

Brokers here are real Mosquitto instances (tests/broker.py); certificates are made
with openssl for each test.
"""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from fusion.config import ConfigError, load_site
from fusion.mqtt import Outbox, connect
from tests.broker import Broker, free_port, make_certificates, write_passwords, write_site

pytestmark = pytest.mark.broker


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def close(client) -> None:
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def password_broker(tmp_path):
    """A broker that takes user ``pipeline`` with password ``pipe-secret`` and no one anonymous."""
    passwd = write_passwords(tmp_path / "passwd", {"pipeline": "pipe-secret"})
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", extra=f"allow_anonymous false\npassword_file {passwd}\n").start()
    yield broker
    broker.stop()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=lambda mode: f"{mode:04o}")
def test_a_password_file_others_may_read_stops_start_up_naming_file_field_and_fix(tmp_path, password_broker, mode):
    secret = tmp_path / "pw"
    secret.write_text("pipe-secret\n")
    site_path = write_site(tmp_path / "site", password_broker.port, outbox=tmp_path / "outbox",
                           mqtt_extra=f'username = "pipeline"\npassword_file = "{secret}"')
    site = load_site(site_path)
    secret.chmod(mode)
    with pytest.raises(ConfigError) as info:
        connect(site, "pw-mode-check")
    message = str(info.value)
    assert str(site_path) in message and "mqtt.password_file" in message and str(secret) in message
    assert f"{mode:04o}" in message and f"chmod 600 {secret}" in message
    assert "pipe-secret" not in message
    secret.chmod(0o600)  # the same file, private: the broker takes it
    close(connect(site, "pw-mode-check"))


def test_a_missing_password_file_names_the_field(tmp_path, password_broker):
    site_path = write_site(tmp_path / "site", password_broker.port, outbox=tmp_path / "outbox",
                           mqtt_extra=f'username = "pipeline"\npassword_file = "{tmp_path / "nope"}"')
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: cannot read .*nope \(no such file\)"):
        connect(load_site(site_path), "pw-missing")


@pytest.fixture
def tls_broker(tmp_path):
    """A broker with a plaintext listener (``port``) and a TLS one (``tls_port``) that wants a client certificate."""
    (tmp_path / "certs").mkdir()
    certs = make_certificates(tmp_path / "certs")
    (tmp_path / "broker").mkdir()
    tls_port = free_port()
    broker = Broker(tmp_path / "broker", per_listener=True, extra=(
        "allow_anonymous true\n"
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n"
        "require_certificate true\nallow_anonymous true\n")).start()
    broker.tls_port, broker.certs = tls_port, certs
    yield broker
    broker.stop()


def client_certificate_site(tmp_path, port, certs):
    """A site with a client certificate and key but no ``tls_ca``."""
    extra = f'tls_cert = "{certs["client.crt"]}"\ntls_key = "{certs["client.key"]}"'
    return load_site(write_site(tmp_path / f"site-{port}", port, outbox=tmp_path / "outbox", mqtt_extra=extra))


def test_a_client_certificate_without_tls_ca_is_tls_against_the_system_ca_store(tmp_path, tls_broker, monkeypatch):
    """Never plaintext: the broker is checked against the system's CAs (OpenSSL's default paths)."""
    certs = tls_broker.certs
    # the plaintext listener: before, the node connected there in the clear
    with pytest.raises(OSError) as info:
        connect(client_certificate_site(tmp_path, tls_broker.port, certs), "tls-plain")
    assert f"127.0.0.1:{tls_broker.port}" in str(info.value)
    # the TLS listener, whose CA the system store does not hold: refused, with the reason
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-cas"))
    site = client_certificate_site(tmp_path, tls_broker.tls_port, certs)
    with pytest.raises(OSError, match="certificate verify failed") as info:
        connect(site, "tls-unknown-ca")
    assert f"127.0.0.1:{tls_broker.tls_port}" in str(info.value)
    # the same, with the test CA as the system store (OpenSSL reads SSL_CERT_FILE): connected over TLS
    monkeypatch.setenv("SSL_CERT_FILE", certs["ca.crt"])
    close(connect(site, "tls-system-store"))


@pytest.mark.parametrize("field", ["tls_ca", "tls_cert", "tls_key"])
def test_a_missing_tls_file_names_the_field(tmp_path, tls_broker, field):
    certs = tls_broker.certs
    files = {"tls_ca": certs["ca.crt"], "tls_cert": certs["client.crt"], "tls_key": certs["client.key"],
             field: str(tmp_path / "missing.pem")}
    extra = "\n".join(f'{name} = "{path}"' for name, path in files.items())
    site_path = write_site(tmp_path / "site", tls_broker.tls_port, outbox=tmp_path / "outbox", mqtt_extra=extra)
    with pytest.raises(ConfigError, match=rf"site.toml: mqtt\.{field}: cannot read .*missing.pem \(no such file\)"):
        connect(load_site(site_path), "tls-missing")


def test_the_outbox_and_its_wal_are_created_readable_by_the_owner_only(tmp_path):
    outbox = Outbox(tmp_path / "new" / "edge-1.sqlite")
    outbox.add([("borderfusion/v1/alerts/agency-a", b'{"alert_id": "x"}')])
    files = [tmp_path / "new" / name for name in ("edge-1.sqlite", "edge-1.sqlite-wal", "edge-1.sqlite-shm")]
    try:
        assert {f.name: mode_of(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode_of(tmp_path / "new") == 0o700
    finally:
        outbox.close()
    # one left 0644 by an older version is tightened when opened
    (tmp_path / "new" / "edge-1.sqlite").chmod(0o644)
    Outbox(tmp_path / "new" / "edge-1.sqlite").close()
    assert mode_of(tmp_path / "new" / "edge-1.sqlite") == 0o600


def test_run_without_a_broker_names_host_port_and_what_to_check(tmp_path):
    port = free_port()  # nothing listens there
    site_path = write_site(tmp_path / "site", port, outbox=tmp_path / "outbox")
    node = subprocess.run([sys.executable, "-m", "fusion.cli", "run", "--config", str(site_path)],
                          capture_output=True, text=True, timeout=120)
    assert node.returncode == 1, node.stderr
    assert f"127.0.0.1:{port}" in node.stderr and "Connection refused" in node.stderr
    assert "broker is running" in node.stderr and str(site_path) in node.stderr
    assert "Traceback" not in node.stderr
