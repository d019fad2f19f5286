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
