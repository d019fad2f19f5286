from __future__ import annotations

from pathlib import Path

import pytest

from fusion.config import load_site

ROOT = Path(__file__).resolve().parent.parent
DEMO_SITE = ROOT / "configs" / "demo" / "site.toml"


@pytest.fixture(scope="session")
def demo_site():
    return load_site(DEMO_SITE)


@pytest.fixture(scope="session")
def demo_log(tmp_path_factory, demo_site):
    """A 300 s simulated log of the demo site, with its truth (seed 3)."""
    from fusion.simulate import simulate

    out = tmp_path_factory.mktemp("demo-log")
    log, truth = out / "sensors.jsonl.gz", out / "truth.jsonl"
    simulate(demo_site, 300.0, log, truth, seed=3, n_targets=16)
    return log, truth


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free loopback port, stopped by its pid afterwards."""
    from tests.broker import Broker

    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def live_site(tmp_path, broker):
    """The demo site pointed at ``broker``, with its outbox in the test's folder."""
    from tests.broker import write_site

    return write_site(tmp_path / "site", broker.port, outbox=tmp_path / "outbox")


@pytest.fixture(scope="session")
def short_log(tmp_path_factory, demo_site):
    """A 180 s simulated demo log (seed 5) and what replay makes of it."""
    from fusion.pipeline import Outputs
    from fusion.replay import replay_file
    from fusion.simulate import simulate

    out = tmp_path_factory.mktemp("live-log")
    log = out / "sensors.jsonl.gz"
    simulate(demo_site, 180.0, log, out / "truth.jsonl", seed=5, n_targets=10)
    expected = Outputs()
    replay_file(demo_site, log, keep=expected, progress=False)
    return log, expected
