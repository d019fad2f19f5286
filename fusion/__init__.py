"""Wiring: config, pipeline, command line, MQTT, logs, simulation."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

__all__ = ["__version__"]


def _version() -> str:
    """The installed distribution's version (pyproject.toml is its one source); in a checkout that was
    never installed, read pyproject.toml itself."""
    try:
        return importlib.metadata.version("borderfusion")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__ = _version()
