"""MemoryPayloadService: file content in sparse in-memory blocks, lost on restart."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from dittofs.payload.interfaces import IPayloadService

BLOCK = 4 * 1024 * 1024


@implementer(IPayloadService)
class MemoryPayloadService:
    """Each file is a dict of block index -> bytearray no longer than what was written."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._files: dict[Any, dict[int, bytearray]] = {}

    def read_at(self, content_id: Any, offset: int, count: int) -> defer.Deferred:
        blocks = self._files.get(content_id)
        if not blocks:
            return defer.succeed(bytes(count))
        first, last = offset // BLOCK, (offset + count - 1) // BLOCK
        if first == last:
            blk = blocks.get(first)
            start = offset - first * BLOCK
            if blk is not None and start + count <= len(blk):
                return defer.succeed(bytes(blk[start:start + count]))
        out = bytearray(count)
        pos = offset
        end = offset + count
        while pos < end:
            idx = pos // BLOCK
            start = pos - idx * BLOCK
            n = min(BLOCK - start, end - pos)
            blk = blocks.get(idx)
            if blk is not None and start < len(blk):
                piece = blk[start:start + n]
                out[pos - offset:pos - offset + len(piece)] = piece
            pos += n
        return defer.succeed(bytes(out))

    def write_at(self, content_id: Any, offset: int, data: Any) -> defer.Deferred:
        blocks = self._files.setdefault(content_id, {})
        mv = memoryview(data)
        pos = offset
        i = 0
        total = len(mv)
        while i < total:
            idx = pos // BLOCK
            start = pos - idx * BLOCK
            n = min(BLOCK - start, total - i)
            blk = blocks.get(idx)
            if blk is None:
                blk = blocks[idx] = bytearray()
            if len(blk) < start:
                blk.extend(bytes(start - len(blk)))
            blk[start:start + n] = mv[i:i + n]
            pos += n
            i += n
        return defer.succeed(None)

    def truncate(self, content_id: Any, size: int) -> defer.Deferred:
        blocks = self._files.get(content_id)
        if blocks:
            keep = (size + BLOCK - 1) // BLOCK
            for idx in [i for i in blocks if i >= keep]:
                del blocks[idx]
            tail = size - (keep - 1) * BLOCK if keep else 0
            blk = blocks.get(keep - 1)
            if blk is not None and len(blk) > tail:
                del blk[tail:]
        return defer.succeed(None)

    def flush(self, content_id: Any) -> defer.Deferred:
        return defer.succeed(None)

    def delete(self, content_id: Any) -> defer.Deferred:
        self._files.pop(content_id, None)
        return defer.succeed(None)

    def close(self) -> defer.Deferred:
        return defer.succeed(None)

    def stored_bytes(self) -> int:
        return sum(len(b) for blocks in self._files.values() for b in blocks.values())
