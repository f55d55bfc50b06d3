"""Text that came from files and tools is data: shown escaped, never interpreted.

A model path, a build name or a line of llama.cpp's stderr can hold ESC, CR, BEL or other
control characters (C0, DEL, C1) that would move the cursor or recolour a terminal.
Everywhere such text is printed (command line, app, exports, failure lines) it goes
through ``printable`` first: each control character becomes a visible escape (``\\x1b``).
"""

from __future__ import annotations

import unicodedata

_KEPT_IN_BLOCKS = "\n\t"


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with control characters escaped; newlines and tabs kept when ``multiline``."""
    if text.isprintable():
        return text
    kept = _KEPT_IN_BLOCKS if multiline else ""
    # Format characters (zero-width joiners in emoji) are harmless inside generated text.
    escaped = ("Cc", "Cs", "Co", "Cn") if multiline else ("Cc", "Cf", "Cs", "Co", "Cn")
    return "".join(ch if ch in kept or unicodedata.category(ch) not in escaped else _escape(ch)
                   for ch in text)
