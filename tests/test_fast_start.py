"""Start-up: --help and validate-config load none of the heavy parts; a cold kernel cache is announced."""

from __future__ import annotations

import io
import subprocess
import sys

from tests.conftest import DEMO_SITE, ROOT
from tracking.warmup import KERNEL_MODULES, cache_is_cold, warm_up

_HEAVY = ("numba", "scipy.stats", "scipy.special", "tracking.tracker", "tracking.kernels", "fusion.render", "pyarrow")


def _modules_after(argv: list[str]) -> tuple[int, set[str]]:
    script = f"""
import contextlib, io, sys
from fusion.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as stop:
        code = stop.code
print(code, *sorted(name for name in {_HEAVY!r} if name in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    code, *loaded = out.stdout.split()
    return int(code), set(loaded)


def test_help_and_validate_config_load_no_heavy_module():
    assert _modules_after(["--help"]) == (0, set())
    assert _modules_after(["replay", "--help"]) == (0, set())
    assert _modules_after(["validate-config", str(DEMO_SITE)]) == (0, set())


def test_a_cold_cache_is_announced_with_progress():
    shown = io.StringIO()
    warm_up(extra=[("something else", lambda: None)], progress=shown, cold=True)
    text = shown.getvalue()
    assert "compiling" in text and "one-time" in text and "minutes" in text
    assert "[1/2] tracker" in text and "[2/2] something else" in text
    quiet = io.StringIO()
    warm_up(progress=quiet, cold=False)
    assert quiet.getvalue() == ""


def test_cache_is_cold_until_every_kernel_module_has_an_index(tmp_path):
    assert cache_is_cold(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    for module in KERNEL_MODULES[:-1]:
        (tmp_path / "__pycache__" / f"{module}.f-10.py311.nbi").touch()
    assert cache_is_cold(tmp_path)
    (tmp_path / "__pycache__" / f"{KERNEL_MODULES[-1]}.g-3.py311.nbi").touch()
    assert not cache_is_cold(tmp_path)
