"""Annotated hex vectors: each line is hex words followed by a free-text note."""

from __future__ import annotations

import string

_HEX = set(string.hexdigits)


def hexv(text: str) -> bytes:
    """Bytes from the leading hex words of each line; the rest of a line is its annotation.

    A word counts as hex only if it has an even number of hex digits, so notes such as
    "uid 1000" or "2 gids" end the hex part of their line.
    """
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for word in line.split():
            if len(word) % 2 or not set(word) <= _HEX:
                break
            out.append(word)
    return bytes.fromhex("".join(out))
