"""Widgets keep their styles in a .tcss file beside their module."""

from pathlib import Path


def css_beside(module_file: str) -> str:
    return Path(module_file).with_suffix(".tcss").read_text(encoding="utf-8")
