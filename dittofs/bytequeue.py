"""Received bytes kept as the chunks they arrived in: a message is copied out once.

Appending each chunk to one ``bytearray`` copies every byte in, moves what is left after
each message is cut off, and copies the message out again: for 1 MiB WRITEs that was most
of a reactor turn.  Here chunks are only referenced; ``take`` joins the pieces of one
message (one copy) and leaves the rest of a chunk as a zero-copy ``memoryview``.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class ByteQueue:
    __slots__ = ("_chunks", "_len")

    def __init__(self) -> None:
        self._chunks: deque[Any] = deque()  # bytes, or a memoryview of a chunk's rest
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._len += len(data)

    def head(self, n: int) -> Any:
        """A buffer whose first ``n`` bytes are the queue's first ``n`` (``n`` <= len)."""
        first = self._chunks[0]
        if len(first) >= n:
            return first
        merged = self.take(n)
        self._chunks.appendleft(merged)
        self._len += n
        return merged

    def take(self, n: int) -> bytes:
        """Remove and return the first ``n`` bytes (``n`` <= len)."""
        if not n:
            return b""
        chunks = self._chunks
        self._len -= n
        first = chunks[0]
        size = len(first)
        if size == n:
            chunks.popleft()
            return first if type(first) is bytes else first.tobytes()
        if size > n:
            view = first if type(first) is memoryview else memoryview(first)
            chunks[0] = view[n:]
            return view[:n].tobytes()
        parts = []
        while n:
            c = chunks[0]
            if len(c) <= n:
                parts.append(c)
                chunks.popleft()
                n -= len(c)
            else:
                view = c if type(c) is memoryview else memoryview(c)
                parts.append(view[:n])
                chunks[0] = view[n:]
                n = 0
        return b"".join(parts)

    def skip(self, n: int) -> None:
        """Drop the first ``n`` bytes (``n`` <= len)."""
        chunks = self._chunks
        self._len -= n
        while n:
            c = chunks[0]
            if len(c) <= n:
                chunks.popleft()
                n -= len(c)
            else:
                chunks[0] = (c if type(c) is memoryview else memoryview(c))[n:]
                n = 0
