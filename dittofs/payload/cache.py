"""The block cache: 4 MiB block buffers per file, what is written in them, and LRU eviction.

Pure bookkeeping, no I/O and no threads.  A block's buffer is only as long as its
content; bytes beyond it, and holes inside it, are zeros.  It is a ``bytearray``, or an
immutable buffer the block adopted without a copy (``bytes`` fetched from the block store,
a view of a received message that covered the whole block, a read-only view of its own
bytearray once an upload took it) and copies on its first partial write.  A block whose content was
uploaded before (``base`` set) but is not ``loaded`` holds only the ranges written
since, listed in ``cov``; they must be merged over the base before it can be read or
uploaded in full.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

BLOCK_SIZE = 4 * 1024 * 1024
UNKNOWN: Any = object()  # the base digest has not been looked up yet


def add_interval(cov: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """Merge [start, end) into a sorted list of disjoint intervals."""
    out = []
    placed = False
    for s, e in cov:
        if e < start:
            out.append((s, e))
        elif end < s:
            if not placed:
                out.append((start, end))
                placed = True
            out.append((s, e))
        else:
            start, end = min(s, start), max(e, end)
    if not placed:
        out.append((start, end))
    return out


def covers(cov: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in cov)


class Block:
    """One cached block of one file."""

    __slots__ = ("cid", "idx", "buf", "base", "loaded", "cov", "dirty", "version",
                 "first_seg", "dropped")

    def __init__(self, cid: str, idx: int, base: Any = UNKNOWN) -> None:
        self.cid = cid
        self.idx = idx
        self.buf: Any = bytearray()  # or adopted bytes / a read-only view of bytes
        self.base = base  # digest of the stored content, None if never stored, or UNKNOWN
        self.loaded = base is None  # True once buf holds the whole content
        self.cov: list[tuple[int, int]] = []
        self.dirty = False
        self.version = 0
        self.first_seg = 0  # the oldest WAL segment with changes not yet uploaded
        self.dropped = False  # removed by truncate/delete while an upload was running

    @property
    def complete(self) -> bool:
        """The buffer is the whole truth: no merge with a stored base is needed."""
        return self.loaded or self.base is None

    def write(self, off: int, data: Any) -> None:
        end = off + len(data)
        buf = self.buf
        if type(buf) is not bytearray:  # adopted and immutable: copy on first write
            buf = self.buf = bytearray(buf)
        if len(buf) < off:
            buf.extend(bytes(off - len(buf)))
        buf[off:end] = data
        if not self.complete:
            self.cov = add_interval(self.cov, off, end)
        self.version += 1

    def merge_base(self, base_data: bytes) -> None:
        """Lay the stored content under what was written since; the block becomes loaded."""
        merged = bytearray(base_data)
        if len(merged) < len(self.buf):
            merged.extend(bytes(len(self.buf) - len(merged)))
        for s, e in self.cov:
            merged[s:e] = self.buf[s:e]
        self.buf = merged
        self.cov = []
        self.loaded = True

    def adopt(self, data: Any) -> None:
        """The whole content is ``data``, immutable (``bytes`` or a view of ``bytes``): kept
        as the buffer, not copied."""
        self.buf = data
        self.loaded = True
        self.cov = []
        self.version += 1

    def truncate(self, length: int) -> None:
        """Cut the content at ``length`` (the block must be complete)."""
        if len(self.buf) > length:
            if type(self.buf) is bytearray:
                del self.buf[length:]
            else:
                self.buf = self.buf[:length]
            self.version += 1


class Cache:
    """All cached blocks, with byte accounting, an LRU of clean blocks and the dirty set."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.blocks: dict[tuple[str, int], Block] = {}
        self.by_file: dict[str, set[int]] = {}
        self.clean: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.dirty: dict[tuple[str, int], Block] = {}
        self.uploading: set[Block] = set()  # cached blocks being uploaded (start_upload)
        self.evictions = 0
        self.total = 0  # bytes in all buffers
        self.dirty_total = 0  # bytes in dirty buffers

    def bytes(self) -> int:
        return self.total

    def dirty_bytes(self) -> int:
        return self.dirty_total

    def _resized(self, block: Block, before: int) -> None:
        delta = len(block.buf) - before
        if (block.cid, block.idx) in self.blocks:
            self.total += delta
            if block.dirty:
                self.dirty_total += delta

    def write(self, block: Block, off: int, data: Any) -> None:
        before = len(block.buf)
        block.write(off, data)
        self._resized(block, before)

    def adopt(self, block: Block, data: Any) -> None:
        before = len(block.buf)
        block.adopt(data)
        self._resized(block, before)

    def merge(self, block: Block, base_data: bytes) -> None:
        before = len(block.buf)
        block.merge_base(base_data)
        self._resized(block, before)

    def truncate(self, block: Block, length: int) -> None:
        before = len(block.buf)
        block.truncate(length)
        self._resized(block, before)

    def get(self, cid: str, idx: int) -> Block | None:
        b = self.blocks.get((cid, idx))
        if b is not None and (cid, idx) in self.clean:
            self.clean.move_to_end((cid, idx))
        return b

    def add(self, block: Block) -> Block:
        key = (block.cid, block.idx)
        self.blocks[key] = block
        self.by_file.setdefault(block.cid, set()).add(block.idx)
        self.total += len(block.buf)
        if block.dirty:
            self.dirty[key] = block
            self.dirty_total += len(block.buf)
        else:
            self.clean[key] = None
        return block

    def mark_dirty(self, block: Block, segment: int) -> None:
        key = (block.cid, block.idx)
        if not block.dirty:
            block.dirty = True
            block.first_seg = segment
            self.clean.pop(key, None)
            self.dirty[key] = block
            if key in self.blocks:
                self.dirty_total += len(block.buf)

    def mark_clean(self, block: Block) -> None:
        key = (block.cid, block.idx)
        if block.dirty and self.dirty.pop(key, None) is not None:
            self.dirty_total -= len(block.buf)
        block.dirty = False
        block.first_seg = 0
        if key in self.blocks:
            self.clean[key] = None

    def drop(self, cid: str, idx: int) -> Block | None:
        key = (cid, idx)
        b = self.blocks.pop(key, None)
        if b is not None:
            b.dropped = True
            self.uploading.discard(b)  # its upload runs on, but holds nothing any more
            self.total -= len(b.buf)
            self.clean.pop(key, None)
            if self.dirty.pop(key, None) is not None:
                self.dirty_total -= len(b.buf)
            idxs = self.by_file.get(cid)
            if idxs is not None:
                idxs.discard(idx)
                if not idxs:
                    del self.by_file[cid]
        return b

    def file_blocks(self, cid: str) -> list[Block]:
        return [self.blocks[(cid, i)] for i in sorted(self.by_file.get(cid, ()))]

    def evict(self) -> int:
        """Drop least recently used clean blocks until under the cap; return bytes freed."""
        freed = 0
        total = self.total
        while total - freed > self.max_bytes and self.clean:
            key, _ = self.clean.popitem(last=False)
            b = self.blocks.get(key)
            if b is None or b in self.uploading:
                continue
            freed += len(b.buf)
            self.drop(*key)
            self.evictions += 1
        return freed

    def start_upload(self, block: Block) -> None:
        """``block`` is being uploaded (a set, so that the background sync's
        oldest_segment and the metrics need not walk every cached block)."""
        self.uploading.add(block)

    def end_upload(self, block: Block) -> None:
        self.uploading.discard(block)

    def oldest_segment(self) -> int | None:
        segs = [b.first_seg for b in self.dirty.values() if b.first_seg]
        segs += [b.first_seg for b in self.uploading if b.first_seg]
        return min(segs) if segs else None
