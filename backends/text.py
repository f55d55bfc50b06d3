"""Text that came from files and tools is data: shown escaped, never interpreted.

A model path, a build name or a line of llama.cpp's stderr can hold ESC, CR, BEL or other
control characters (C0, DEL, C1) that would move the cursor or recolour a terminal.
Everywhere such text is printed (command line, app, exports, failure lines) it goes
through ``printable`` first: each control character becomes a visible escape (``\\x1b``).
"""

from __future__ import annotations

import shlex
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


def shell_quote(arg: str) -> str:
    """``arg`` as a POSIX shell word that pastes back as exactly ``arg``: shlex's single
    quotes, or bash's ``$'...'`` with escapes when it holds control characters, so what is
    shown is readable and what runs is the same bytes."""
    if arg.isprintable():
        return shlex.quote(arg)
    body = []
    for ch in arg:
        if ch == "\\" or ch == "'":
            body.append("\\" + ch)
        elif ch.isprintable():
            body.append(ch)
        else:
            body.append(_escape(ch) if ord(ch) < 0x100 else f"\\U{ord(ch):08x}")
    return "$'" + "".join(body) + "'"


def shell_join(argv: list[str] | tuple[str, ...]) -> str:
    """A command line to show and to paste: every word quoted by ``shell_quote``."""
    return " ".join(shell_quote(a) for a in argv)
