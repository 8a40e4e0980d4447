"""Terminal: what text from strangers (pages, URLs, servers, seed files, queries) may look like when it
reaches the user's terminal.

Control characters (C0, DEL, C1: ESC sequences could move the cursor, retitle the window, or hide
what follows) and the Unicode bidi controls (which can make a URL read backwards) are shown as
escapes, `\\x1b`, `\\u202e`; everything else passes unchanged. Used for the table format and every
message on stderr; csv, json and jsonl output is data and keeps its exact characters.
"""

from __future__ import annotations

_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
_ESCAPES = {c: f"\\x{c:02x}" for c in _CONTROLS} | {c: f"\\u{c:04x}" for c in _BIDI}


def safe_lines(text: str) -> str:
    """Lines of text, each made safe (the newlines between them kept)."""
    return "\n".join(safe(line) for line in text.split("\n"))


def safe(text: str) -> str:
    """`text` with control and bidi characters escaped (see the module docstring)."""
    return text.translate(_ESCAPES)
