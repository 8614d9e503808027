"""Write-ahead log of payload changes: record format (pure) and segmented files.

Record: crc32 (4) | body length (4) | op (1) | content-id length (2) | offset or size (8)
| content id | data.  The CRC covers everything after itself, so a torn or partly
written record is detected and replay stops there.  Segments are files
``wal-<n>.log``; a segment is let go once every change it holds is in the block store.

A segment let go is kept, up to SPARE_SEGMENTS of them, as ``spare-<n>.log`` and reused
for a later segment (renamed): records then overwrite blocks the filesystem has allocated
and, mostly, pages it still caches, where a new file's pages and blocks must be allocated
as it grows (writing 64 MiB into a new file cost ~8x the overwrite here, and an fdatasync
that grows a file commits the journal).  The CRC is seeded with the segment's number, so
the records a reused file still holds from its earlier segments fail it and replay stops
where the new records end.  So no file may hold records of a number its next segment
could have: a new WAL's numbers start past every ``wal-`` and ``spare-`` file's, and a
spare's new name is made durable before any record goes into it.

Appends happen in one writer thread that writes everything queued in order; a small
unsynced append is written inline when the writer is idle, a large record is checksummed
and written by the writer thread (zlib releases the GIL for both), so the reactor can take
in the next message meanwhile.  Fsyncs happen in a second thread, the syncer, once the
writer has written what they cover: a sync of segment ``n`` fdatasyncs every segment up to
``n`` not synced before, one call for all the requests queued meanwhile (group commit).
Appends go on while the disk flushes.  Never-synced records carry no promise: after a
power loss, replay takes the intact records of each segment, so a later segment may keep
records written after ones an earlier segment lost.

Small records are written over zeros laid down ahead of them (FILL_BYTES at a time, by
the writer thread): an fdatasync after an append that grows the file commits the
filesystem's journal (ext4: ~330 us on a loop-mounted image here), one after an
overwrite of allocated blocks only flushes them (~110 us).  Replay stops at the zeros as
at any torn record.  Large records (bulk writes, synced once per many megabytes) are
appended as they come: zeros ahead of them would double the bytes written.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from twisted.internet import defer
from twisted.python.failure import Failure

from dittofs.dirsync import fsync_dir
from dittofs.metadata import errors as E
from dittofs.threads import BatchWorker, InlineSync

OP_WRITE, OP_TRUNCATE, OP_DELETE = 1, 2, 3
#: A file's metadata as of a flush, opaque to the WAL (see CachedPayloadService.flush).
OP_ATTRS = 4
#: A file's creation, opaque to the WAL (see CachedPayloadService.log_create).
OP_CREATE = 5
_HDR = struct.Struct(">IIBHQ")
_TAIL = struct.Struct(">BHQ")
_SEED = struct.Struct(">Q")
SEGMENT_BYTES = 64 * 1024 * 1024
#: Segments let go are kept for reuse, this many at most (none while space is low).
SPARE_SEGMENTS = 4
#: New writes are refused (NoSpace) while the WAL's filesystem has less free space than
#: this share of its size (at most RESERVE_MAX): what is left lets deletes and truncates,
#: which need metadata commits, free space again instead of failing too.
RESERVE_FRACTION = 0.05
RESERVE_MAX = 64 * 1024 * 1024
_CHECK_BYTES = 4 * 1024 * 1024  # free space is looked at after this much is appended...
_CHECK_SECONDS = 0.5  # ...or this long after it was found low
#: Records with at least this much data are encoded (CRC) in the writer thread.
OFFLOAD_BYTES = 256 * 1024
#: Zeros are laid down this far ahead of small records, refilled when half is used.
FILL_BYTES = 1024 * 1024
_ZEROS = bytes(FILL_BYTES)
#: A segment nothing needs any more is left behind for a new one (Wal.roll) once it holds
#: this much, or any at all while the disk is nearly full.
ROLL_BYTES = 4 * 1024 * 1024


class _Fill(NamedTuple):
    """A writer item: lay zeros on [start, end) of the segment being appended to."""

    start: int
    end: int


class _Release:
    """A writer item: close the descriptor of the segment before this item's (a roll left
    it with no more appends), so that deleting it frees its space at once."""

    __slots__ = ()


_RELEASE = _Release()


class WalRecord(NamedTuple):
    op: int
    content_id: str
    offset: int  # the offset of a write, the size of a truncate
    data: Any  # bytes-like, writes only
    segment: int = 0


def segment_seed(segment: int) -> int:
    """The CRC's starting value for records of ``segment``."""
    return zlib.crc32(_SEED.pack(segment))


def encode_parts(op: int, content_id: str, offset: int, data: Any, seed: int) -> list:
    """The record as buffers for writev, without copying ``data``; ``seed``: its
    segment's (segment_seed)."""
    cid = content_id.encode()
    tail = _TAIL.pack(op, len(cid), offset)
    crc = zlib.crc32(data, zlib.crc32(cid, zlib.crc32(tail, seed)))
    body_len = len(tail) + len(cid) + len(data)
    return [struct.pack(">II", crc, body_len) + tail + cid, data]


_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)


def _write_all(fd: int | None, parts: list) -> None:
    """Write ``parts`` in order: one writev, then plain writes for whatever it left."""
    if not parts:
        return
    n = os.writev(fd, parts)
    for p in parts:
        size = len(p)
        if n >= size:
            n -= size
            continue
        view = memoryview(p)[n:]
        n = 0
        while view:
            view = view[os.write(fd, view):]


def decode_stream(buf: bytes, segment: int) -> tuple[list[WalRecord], int]:
    """Decode the records of ``segment`` from ``buf``; return them and the offset where
    decoding stopped (the end, or the start of a torn or corrupt record, or of one from
    an earlier segment the file was used for)."""
    out = []
    pos = 0
    mv = memoryview(buf)
    seed = segment_seed(segment)
    while pos + _HDR.size <= len(buf):
        crc, body_len, op, cid_len, offset = _HDR.unpack_from(buf, pos)
        end = pos + 8 + body_len
        if body_len < _TAIL.size + cid_len or end > len(buf):
            break
        if zlib.crc32(mv[pos + 8:end], seed) != crc:
            break
        cid_start = pos + _HDR.size
        cid = bytes(mv[cid_start:cid_start + cid_len]).decode()
        data = bytes(mv[cid_start + cid_len:end])
        out.append(WalRecord(op, cid, offset, data, segment))
        pos = end
    return out, pos


class Wal:
    """Segmented log files in ``directory`` with a group-committing writer thread."""

    def __init__(self, directory: str | os.PathLike, reactor: Any = None,
                 segment_bytes: int = SEGMENT_BYTES,
                 inline_sync: Callable[[], bool] | None = None) -> None:
        """``inline_sync()``: True when nothing waits for the calling (reactor) thread, so
        that an fsync may be done there and then (see threads.InlineSync)."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        existing = self.segments()
        # Reactor thread: spare files as (the number of the segment each last was, size);
        # segments starting in one, and its number (the writer renames it when it opens
        # the segment).
        self._spares: list[tuple[int, int]] = []
        self._recycle: dict[int, int] = {}
        for path in sorted(self.dir.glob("spare-*.log"), reverse=True):  # newest kept
            if len(self._spares) < SPARE_SEGMENTS:
                self._spares.insert(0, (int(path.name[6:-4]), path.stat().st_size))
            else:
                path.unlink()
        self._seg_size = 0  # record bytes in the segment being appended to
        # ...and the end of the zeros laid down (or queued) in it, or of a spare's content
        self._filled = 0
        # Never append to an old segment, nor use a number below a file's.
        self.segment = max(existing[-1:] + [n for n, _ in self._spares] + [0])
        self._next_segment()
        self._oldest = existing[0] if existing else self.segment  # the oldest not trimmed
        self._seg_bytes: dict[int, int] = {}  # record bytes per segment (size, metrics)
        self._fd: int | None = None
        self._fd_seg = 0
        self.writer = BatchWorker("wal", self._write_batch, reactor, inline=self._inline)
        self.sync_here = InlineSync(inline_sync)
        self.syncer = BatchWorker("wal-sync",
                                  lambda targets: self.sync_here.timed(self._sync_batch, targets),
                                  reactor, inline=lambda target: self.sync_here.allowed())
        # Syncer thread only: segments from _sync_from on may hold unsynced records (those
        # left by an earlier process too); older ones are durable or gone.
        self._sync_from = existing[0] if existing else self.segment
        self._sync_fd: int | None = None
        self._sync_fd_seg = 0
        self._dir_synced = 0  # the newest segment whose directory entry is durable
        self.appended = 0  # bytes queued so far (reactor thread)
        self.syncs = 0
        st = os.statvfs(self.dir)
        self.reserve = min(int(st.f_blocks * st.f_frsize * RESERVE_FRACTION), RESERVE_MAX)
        self._checked_bytes = 0
        self._checked_time = 0.0
        self.low_space = False
        self._check_space()

    def _check_space(self) -> None:
        st = os.statvfs(self.dir)
        self.low_space = st.f_bavail * st.f_frsize < self.reserve
        if self.low_space and self._spares:  # free their space first
            for n, _ in self._spares:
                self._spare_path(n).unlink(missing_ok=True)
            self._spares.clear()
            st = os.statvfs(self.dir)
            self.low_space = st.f_bavail * st.f_frsize < self.reserve
        self._checked_bytes = self.appended
        self._checked_time = time.monotonic()

    def _inline(self, item: Any) -> bool:
        # A small record for the open segment is one write(2) into the page cache, a sync
        # barrier nothing at all: cheaper done at once than handed to the thread.
        return item is None or (item[1] == self._fd_seg and type(item[0]) is list)

    def segments(self) -> list[int]:
        return sorted(int(p.name[4:-4]) for p in self.dir.glob("wal-*.log"))

    def _path(self, n: int) -> Path:
        return self.dir / f"wal-{n:016d}.log"

    def _spare_path(self, n: int) -> Path:
        return self.dir / f"spare-{n:016d}.log"

    def _next_segment(self) -> None:
        """Let the next record start a new segment, in a spare file if one is kept."""
        self.segment += 1
        self._seg_size = self._filled = 0
        self._seed = segment_seed(self.segment)
        if self._spares:
            n, size = self._spares.pop()
            self._recycle[self.segment] = n
            self._filled = min(size, self.segment_bytes)  # allocated: no zeros needed

    def replay(self) -> Iterator[WalRecord]:
        """Every intact record of the existing segments, oldest first."""
        for n in self.segments():
            data = self._path(n).read_bytes()
            records, end = decode_stream(data, n)
            self._seg_bytes[n] = end
            yield from records

    def append(self, op: int, content_id: str, offset: int, data: Any = b"",
               sync: bool = True) -> tuple[int, defer.Deferred]:
        """Queue a record; return its segment and a Deferred that fires once it is on disk
        (fsynced when ``sync``, else merely written).  Raises NoSpace for a write while
        the disk is nearly full."""
        if op == OP_WRITE:
            if (self.appended - self._checked_bytes >= _CHECK_BYTES
                    or (self.low_space and time.monotonic() - self._checked_time
                        >= _CHECK_SECONDS)):
                self._check_space()
            if self.low_space:
                raise E.NoSpace(f"WAL: less than {self.reserve} bytes free in {self.dir}")
        size = _HDR.size + len(content_id.encode()) + len(data)
        if self._seg_size and self._seg_size + size > self.segment_bytes:
            self._next_segment()
        if len(data) >= OFFLOAD_BYTES:  # encoded by the writer thread
            parts: Any = (op, content_id, offset, data, self._seed)
        else:
            parts = encode_parts(op, content_id, offset, data, self._seed)
        self._seg_size += size
        self.appended += size
        seg = self.segment
        self._seg_bytes[seg] = self._seg_size
        written = self.writer.submit((parts, seg))
        if (size < OFFLOAD_BYTES and self._seg_size + FILL_BYTES // 2 > self._filled
                and self._filled < self.segment_bytes):
            start = max(self._filled, self._seg_size)
            self._filled = min(start + FILL_BYTES, self.segment_bytes)
            if self._filled > start:
                # Its outcome is the records': a failed batch fails them, not this.
                self.writer.submit((_Fill(start, self._filled), seg)).addErrback(
                    lambda _: None)
        if sync:
            written.addCallback(lambda _: self.syncer.submit(seg))
        return seg, written

    def roll(self) -> bool:
        """Let the next record start a new segment, if the one being appended to holds
        ROLL_BYTES or more (or anything at all while the disk is nearly full); True if it
        did.  For the caller's background sync, when nothing it caches needs that segment
        any more: the segment can then be trimmed once a metadata sync covers its last
        records.  Without a roll, the records of files written and deleted since stay on
        disk until the segment fills, and a disk filled by the one segment could not be
        freed by deleting files: every append fails first."""
        if self._seg_size < ROLL_BYTES and not (self.low_space and self._seg_size):
            return False
        self._next_segment()
        # Both threads let go of the old segment: the writer after its last records, the
        # syncer after syncing them (a sync whose target, the new segment, has no file yet
        # closes its descriptor).  A failure there is met again by the next sync.
        self.writer.submit((_RELEASE, self.segment)).addErrback(lambda _: None)
        self.sync().addErrback(lambda _: None)
        return True

    def sync(self) -> defer.Deferred:
        """Fire once everything appended so far is fsynced."""
        seg = self.segment
        return self.writer.submit(None).addCallback(lambda _: self.syncer.submit(seg))

    def _open(self, seg: int) -> int:
        if self._fd is not None and self._fd_seg == seg:
            return self._fd
        if self._fd is not None:
            os.close(self._fd)  # the syncer fsyncs it through its own descriptor
            self._fd = None
        # Not O_APPEND: records go at the file offset, over the zeros laid down ahead (or
        # a spare's old records).  A segment is only ever opened once (a restart starts a
        # new one).
        path = self._path(seg)
        spare = self._recycle.pop(seg, None)
        if spare is not None:
            try:
                os.rename(self._spare_path(spare), path)
            except FileNotFoundError:
                spare = None
            else:
                # The name is durable before any record of ``seg`` goes in: a crash must
                # not leave them in a file named for a lower number, to be valid again
                # once that file is reused for ``seg`` (see the module's docstring).
                fsync_dir(self.dir)
        flags = os.O_WRONLY if spare is not None else os.O_WRONLY | os.O_CREAT | os.O_EXCL
        self._fd = os.open(path, flags, 0o600)
        self._fd_seg = seg
        return self._fd

    def _sync_batch(self, targets: list) -> list:
        """Syncer thread (or the reactor's, when it is idle and self.sync_here allows it: never
        both at once): make every segment up to the highest target durable.  Each target
        was submitted after the writer had written all appends before it, and segments
        below a target get no more appends, so once synced they are done."""
        target = max(targets)
        newest = 0  # the newest segment synced (a sync may come before its first append)
        try:
            for seg in range(self._sync_from, target + 1):
                if seg == self._sync_fd_seg and self._sync_fd is not None:
                    fd = self._sync_fd
                else:
                    try:
                        fd = os.open(self._path(seg), os.O_RDONLY)
                    except FileNotFoundError:
                        continue  # trimmed (its changes are in the block store), or empty
                    if self._sync_fd is not None:
                        os.close(self._sync_fd)
                    self._sync_fd, self._sync_fd_seg = fd, seg
                os.fdatasync(fd)
                self.syncs += 1
                newest = seg
            if self._sync_fd is not None and self._sync_fd_seg < target:
                # Nothing was appended since a roll (the target has no file yet): the older
                # segment is done, and an open descriptor would keep a trimmed one's space.
                os.close(self._sync_fd)
                self._sync_fd, self._sync_fd_seg = None, 0
            if newest > self._dir_synced:  # new segments' names must survive too
                fsync_dir(self.dir)
                self._dir_synced = newest
            self._sync_from = target
        except OSError as e:
            return [(False, Failure(E.from_os_error(e, "WAL")))] * len(targets)
        return [(True, None)] * len(targets)

    def _write_batch(self, batch: list) -> list:
        """Writer thread: append every record queued, in order (None: a barrier for
        sync)."""
        try:
            pending: list = []  # buffers for the open segment, written with one writev
            for item in batch:
                if item is None:
                    continue
                parts, seg = item
                if parts is _RELEASE:
                    if self._fd is not None and self._fd_seg < seg:
                        _write_all(self._fd, pending)
                        pending = []
                        os.close(self._fd)
                        self._fd, self._fd_seg = None, 0
                    continue
                if type(parts) is _Fill:
                    if seg == self._fd_seg:  # it follows a record of that segment
                        self._fill(parts)
                    continue
                if type(parts) is tuple:
                    parts = encode_parts(*parts)
                if seg != self._fd_seg or self._fd is None or len(pending) >= _IOV_MAX - 2:
                    _write_all(self._fd, pending)
                    pending = []
                    self._open(seg)
                pending += parts
            _write_all(self._fd, pending)
        except OSError as e:
            failure = Failure(E.from_os_error(e, "WAL"))
            return [(False, failure)] * len(batch)
        return [(True, None)] * len(batch)

    def _fill(self, fill: _Fill) -> None:
        """Lay zeros past every record queued so far (pwrite: the file offset, where the
        next record goes, does not move).  Only a speed-up: a failure is left to the
        records, which would meet it themselves."""
        pos = fill.start
        try:
            while pos < fill.end:
                pos += os.pwrite(self._fd, memoryview(_ZEROS)[:fill.end - pos], pos)
        except OSError:
            pass

    def trim(self, keep_from: int) -> None:
        """Let go of segments older than ``keep_from`` (never the one being appended to):
        keep them as spares, or delete them.  Called after every upload: it walks the
        numbers, not the directory."""
        stop = min(keep_from, self.segment)
        while self._oldest < stop and self._oldest != self._fd_seg:
            path = self._path(self._oldest)
            try:
                if self.low_space or len(self._spares) >= SPARE_SEGMENTS:
                    path.unlink()
                else:
                    size = path.stat().st_size
                    path.rename(self._spare_path(self._oldest))
                    self._spares.append((self._oldest, size))
            except FileNotFoundError:
                pass
            self._seg_bytes.pop(self._oldest, None)
            self._oldest += 1

    def size(self) -> int:
        """Bytes of records in the segments (not the zeros laid down past them)."""
        total = 0
        for n in self.segments():
            known = self._seg_bytes.get(n)
            if known is None:
                try:
                    known = self._path(n).stat().st_size  # not replayed: an upper bound
                except FileNotFoundError:
                    continue
            total += known
        return total

    def close(self) -> None:
        self.writer.stop()
        self.syncer.stop()
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._sync_fd is not None:
            os.close(self._sync_fd)
            self._sync_fd = None
