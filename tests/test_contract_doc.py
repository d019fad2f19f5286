"""docs/interface.md is the contract users read: every config key and every command-line flag is in it."""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

import msgspec

from fusion.cli import build_parser
from fusion.config import SiteFile

DOC = (Path(__file__).resolve().parent.parent / "docs" / "interface.md").read_text()


def _struct_keys(struct: type, path: str = "") -> list[str]:
    """Dotted key paths of a msgspec Struct and the Structs nested in it (through unions and lists)."""
    keys = []
    for field in msgspec.structs.fields(struct):
        keys.append(f"{path}{field.encode_name}")
        pending = [field.type]
        while pending:
            kind = pending.pop()
            if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
                keys += _struct_keys(kind, f"{path}{field.encode_name}.")
            else:
                pending += list(typing.get_args(kind))
    return keys


def test_every_site_file_key_is_documented():
    missing = [key for key in _struct_keys(SiteFile)
               if not re.search(rf"\b{re.escape(key.rsplit('.', 1)[-1])}\b", DOC)]
    assert missing == []


def test_every_command_and_flag_is_documented():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name, sub in commands.choices.items():
        if f"borderfusion {name}" not in DOC:
            missing.append(name)
        missing += [f"{name} {flag}" for action in sub._actions for flag in action.option_strings
                    if flag.startswith("--") and flag != "--help" and flag not in DOC]
    assert missing == []


def test_the_help_points_to_this_document(capsys):
    assert "docs/interface.md" in build_parser().format_help()
