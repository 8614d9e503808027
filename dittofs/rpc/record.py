"""RPC record marking over TCP (RFC 5531 section 11), sans-IO.

Each record is one or more fragments; a fragment starts with a 4-byte big-endian
word whose top bit marks the last fragment and whose low 31 bits give its length.
Limits are checked when a marker arrives, before any of its payload is buffered.
"""

from __future__ import annotations

import struct

from dittofs.bytequeue import ByteQueue

_MARK = struct.Struct(">I")
LAST_FRAGMENT = 0x80000000
#: Default ceiling for one record: a 1 MiB WRITE plus headers, with room to spare.
DEFAULT_MAX_RECORD = 4 * 1024 * 1024 + 64 * 1024


class RecordError(ValueError):
    """The byte stream violates record marking or our limits; the connection must close."""


class RecordReader:
    """Consumes TCP bytes and returns whole records as ``bytes``.

    Input is held as the chunks it arrived in (``ByteQueue``): a record is copied out
    once, however many chunks it spans.
    """

    __slots__ = ("max_record", "_q", "_frags", "_frag_total")

    def __init__(self, max_record: int = DEFAULT_MAX_RECORD) -> None:
        self.max_record = max_record
        self._q = ByteQueue()
        self._frags: list[bytes] = []
        self._frag_total = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every record it completes (possibly none)."""
        q = self._q
        if not q and not self._frags and len(data) > 4:
            # The usual case: one whole single-fragment record in one chunk, nothing held.
            mark = _MARK.unpack_from(data, 0)[0]
            if mark & LAST_FRAGMENT and (mark & 0x7FFFFFFF) == len(data) - 4 \
                    and len(data) - 4 <= self.max_record:
                return [data[4:]]
        q.append(data)
        out: list[bytes] = []
        while len(q) >= 4:
            mark = _MARK.unpack_from(q.head(4), 0)[0]
            n = mark & 0x7FFFFFFF
            if self._frag_total + n > self.max_record:
                raise RecordError(
                    f"record of at least {self._frag_total + n} bytes "
                    f"exceeds {self.max_record}")
            if not mark & LAST_FRAGMENT and n == 0:
                raise RecordError("empty non-final fragment")
            if len(q) - 4 < n:
                break
            q.skip(4)
            frag = q.take(n)
            if mark & LAST_FRAGMENT:
                if self._frags:
                    self._frags.append(frag)
                    frag = b"".join(self._frags)
                    self._frags = []
                    self._frag_total = 0
                out.append(frag)
            else:
                self._frags.append(frag)
                self._frag_total += n
        return out

    def buffered(self) -> int:
        """Bytes held for incomplete records."""
        return len(self._q) + self._frag_total


def frame(chunks: list) -> list:
    """Prefix ``chunks`` (one record) with a single last-fragment marker."""
    total = 0
    for c in chunks:
        total += len(c)
    if total > 0x7FFFFFFF:
        raise RecordError("record too large to frame")
    return [_MARK.pack(LAST_FRAGMENT | total), *chunks]


def frame_bytes(record: bytes) -> bytes:
    return _MARK.pack(LAST_FRAGMENT | len(record)) + record
