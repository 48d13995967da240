"""Text from strangers, made safe to print on a terminal.

Spec names, descriptions, file paths and messages that quote them reach the terminal. A raw newline
could forge an error line, an ANSI escape could rewrite the screen, a bidi override could make a line
read differently from what it holds, and a lone surrogate cannot be encoded at all. `printable` escapes
every such character (Python's repr style: \\n, \\x1b, \\u202e, \\udc80), so what is printed is what
the file holds, on one line.
"""

from __future__ import annotations

import unicodedata

# Control, format (bidi overrides, zero-width joiners), surrogate, private-use and unassigned characters,
# and the line and paragraph separators: everything that is not plainly visible text or a space.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every unsafe character escaped; `keep_newlines` keeps '\\n' as a line break."""
    if text.isascii() and text.isprintable():  # the common case, at C speed
        return text
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch.isascii() and ch.isprintable():
            out.append(ch)
        elif ch == " " or unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
            out.append(ch)
        else:
            out.append(_escape(ch))
    return "".join(out)
