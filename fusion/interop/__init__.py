"""Formats for other systems: :mod:`fusion.interop.cot`, the TAK (Cursor-on-Target) feed."""

__all__: list[str] = []
