"""CachedPayloadService: file content through the cache, the WAL and the TransferManager.

Writes land in the cache and the WAL and are acknowledged (after the WAL fsync when
``sync``); the TransferManager uploads blocks in the background: full blocks at once,
others once idle for a tick, and everything of a file on ``flush(remote=True)``.
Dirty data above the cap makes writers wait (backpressure), never fail.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from dittofs import tracing
from dittofs.payload import wal as W
from dittofs.payload.cache import BLOCK_SIZE, Block, Cache, covers
from dittofs.payload.interfaces import IPayloadService
from dittofs.payload.transfer import TransferManager

log = Logger(namespace="dittofs.payload")

DEFAULT_CACHE_BYTES = 512 * 1024 * 1024
IDLE_TICK = 0.5
#: Unstable writes (see write_at) go on without waiting for their WAL records while less
#: than this is queued for the WAL writer; beyond it they wait, as other writes do.
MAX_UNWRITTEN = 64 * 1024 * 1024


def _view(buf: Any, start: int, n: int) -> Any:
    """Up to ``n`` bytes of a block buffer from ``start``, without copying a bytearray."""
    if type(buf) is bytearray:
        return memoryview(buf)[start:start + n]
    return buf[start:start + n]  # bytes (whole: the same object) or a read-only view


@implementer(IPayloadService)
class CachedPayloadService:
    def __init__(self, name: str, store: Any, objects: Any, hash_pool: Any,
                 wal: W.Wal | None = None, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 concurrency: int = 4, wal_sync_ms: int = 200, reactor: Any = None,
                 owner_exists: Any = None, restore_attrs: Any = None,
                 restore_unlink: Any = None, restore_create: Any = None) -> None:
        """``owner_exists(content_id)``: fires True or False as the file owning a content
        id exists or not, None where it cannot tell; WAL replay uses it (see start).
        ``restore_attrs(content_id, attrs)``: WAL replay hands it the metadata a flush
        logged for a file that exists (see flush); ``restore_unlink(content_id,
        unlinked)``, the namespace change a delete logged (see delete);
        ``restore_create(content_id, created)``, a creation (see log_create)."""
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.name = name
        self.store = store
        self.objects = objects
        self.owner_exists = owner_exists
        self.restore_attrs = restore_attrs
        self.restore_unlink = restore_unlink
        self.restore_create = restore_create
        self.reactor = reactor
        self.cache = Cache(cache_bytes)
        self.dirty_cap = max(cache_bytes * 3 // 4, 2 * BLOCK_SIZE)
        self.wal = wal
        self.transfer = TransferManager(self.cache, store, objects, objects.name, hash_pool,
                                        reactor, concurrency, self._progress,
                                        lazy_maps=wal is not None,
                                        pressing=lambda: bool(self._space_waiters))
        self._space_waiters: list[defer.Deferred] = []
        self._seen: dict[tuple[str, int], int] = {}
        self._ticker = task.LoopingCall(self._tick)
        self._ticker.clock = reactor
        # Writes acknowledged without an fsync (the writeback tier) reach stable storage
        # within this interval: what a crash of the machine can lose.
        self._wal_syncer = task.LoopingCall(self._sync_wal)
        self._wal_syncer.clock = reactor
        self.wal_sync_s = wal_sync_ms / 1000
        self._synced_bytes = 0
        self._round: defer.Deferred | None = None  # a background sync round in flight
        self._unwritten = 0  # bytes of unstable writes whose WAL record is not written yet
        self._lost: dict[str, Failure] = {}  # content id -> why such a record failed
        self.started = False

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> int:
        """Replay the WAL into the cache and start background uploads; return records.

        Where ``owner_exists`` can tell, a file's records follow the metadata store, not
        the order of the WAL: for a file that exists its writes and truncates are replayed
        and a delete record is ignored (its namespace change did not survive: deletes are
        logged without an fsync, after the change, unless they carry it); for a file that
        no longer exists (or never durably did) nothing is replayed and its content is
        dropped once.  File ids are never reused, so a content id names one file for ever.
        The metadata a flush logged goes to ``restore_attrs``, and the unlink a delete
        logged to ``restore_unlink``, in order with the rest, for files that exist; after
        an unlink the file is asked about again.  A creation, a file's first record, goes
        to ``restore_create`` before the file is asked about."""
        n = 0
        if self.wal is not None:
            alive: dict[str, bool | None] = {}
            for rec in self.wal.replay():
                n += 1
                cid = rec.content_id
                if rec.op == W.OP_CREATE:
                    if self.restore_create is not None:
                        await self.restore_create(cid, bytes(rec.data))
                    alive.pop(cid, None)
                    continue
                if cid not in alive:
                    alive[cid] = (None if self.owner_exists is None
                                  else await self.owner_exists(cid))
                live = alive[cid]
                if live is False:
                    continue
                if rec.op == W.OP_WRITE:
                    self._apply_write(cid, rec.offset, rec.data, rec.segment)
                elif rec.op == W.OP_TRUNCATE:
                    await self._truncate(cid, rec.offset, rec.segment)
                elif rec.op == W.OP_ATTRS:
                    if live and self.restore_attrs is not None:
                        await self.restore_attrs(cid, bytes(rec.data))
                elif (rec.op == W.OP_DELETE and live and rec.data
                      and self.restore_unlink is not None):
                    await self.restore_unlink(cid, bytes(rec.data))
                    alive[cid] = await self.owner_exists(cid)
                elif live is None:
                    await self.transfer.drop_from(cid, 0)
            dead = [cid for cid, live in alive.items() if live is False]
            for cid in dead:
                await self.transfer.drop_from(cid, 0)
            if n:
                log.info("payload {name}: replayed {n} WAL records ({d} of files gone)",
                         name=self.name, n=n, d=len(dead))
            for b in list(self.cache.dirty.values()):
                self.transfer.schedule(b)
        self._ticker.start(IDLE_TICK, now=False)
        self._wal_syncer.start(self.wal_sync_s, now=False)
        self.started = True
        return n

    async def close(self, timeout: float | None = None) -> None:
        """Make the WAL durable, upload what is dirty (for at most ``timeout`` seconds),
        then stop.  What is not uploaded in time stays in the WAL for the next start."""
        if self._ticker.running:
            self._ticker.stop()
        if self._wal_syncer.running:
            self._wal_syncer.stop()
        if self._round is not None:
            # A background round still using the stores: it ends before they close.
            await self._round
        if self.wal is not None:
            await self.wal.sync()
        uploads = self.transfer.wait_clean(list(self.cache.dirty.values()))
        if timeout is not None:
            uploads.addTimeout(timeout, self.reactor)
        try:
            await uploads
        except defer.TimeoutError:
            log.warn("payload {name}: {n} blocks not uploaded before the shutdown timeout; "
                     "the WAL keeps them for the next start", name=self.name,
                     n=len(self.cache.dirty))
        await self._sync_round(closing=True)
        if self.wal is not None:
            self.wal.close()
        await self.store.close()

    def _keep_from(self, closing: bool = False) -> int:
        """The oldest WAL segment still needed by a dirty block; with nothing dirty, the
        one being appended to (or, when closing, none at all).  That one is then left for
        a new one if it holds enough (Wal.roll), and trimmed by the next round: after a
        whole round, whose metadata sync covers every change its records stand for."""
        assert self.wal is not None
        oldest = self.cache.oldest_segment()
        if oldest is not None:
            return oldest
        if closing:
            return self.wal.segment + 1
        current = self.wal.segment
        self.wal.roll()
        return current

    def _sync_wal(self) -> None:
        if self._round is None:
            self._round = d = defer.ensureDeferred(self._sync_round())
            d.addErrback(lambda f: log.failure("background sync failed", f))
            d.addBoth(self._round_ended)  # at once if the round is already over

    def _round_ended(self, _: Any) -> None:
        self._round = None

    async def _sync_round(self, closing: bool = False) -> None:
        """What was acknowledged without an fsync (unstable writes, the writeback tier)
        reaches stable storage here: the WAL, then the metadata store (block maps, and the
        namespace of writeback shares on the same store).  Then what waited for that sync:
        WAL segments whose blocks are uploaded and mapped, and blobs freed by a change."""
        # Every block clean now has its map change committed: the sync below covers it.
        keep = self._keep_from(closing) if self.wal is not None else None
        releases = self.transfer.take_unsynced_releases()
        try:
            if self.wal is not None:
                appended = self.wal.appended
                if appended != self._synced_bytes:
                    await self.wal.sync()  # sizes only after the bytes they cover
                    self._synced_bytes = appended
            await self.objects.sync()
        except Exception:
            self.transfer.unsynced_releases[:0] = releases  # the next round tries again
            raise
        if keep is not None:
            self.wal.trim(keep)
        await self.transfer.release_all(releases)

    def _tick(self) -> None:
        """Upload blocks that were not written since the last tick."""
        seen, now, uploading = self._seen, {}, self.cache.uploading
        # A copy: an upload can complete inside schedule() (a small block already stored).
        for key, b in list(self.cache.dirty.items()):
            if b not in uploading:
                if seen.get(key) == b.version:
                    self.transfer.schedule(b)
                else:
                    now[key] = b.version
        self._seen = now

    def _progress(self) -> None:
        self.cache.evict()
        if self._space_waiters and self.cache.dirty_bytes() < self.dirty_cap:
            waiters, self._space_waiters = self._space_waiters, []
            for d in waiters:
                d.callback(None)

    # -- IPayloadService --------------------------------------------------------

    def _apply_write(self, cid: str, offset: int, data: Any, segment: int) -> None:
        mv = memoryview(data)
        # The bytes of a received message never change: a whole block of them is kept as
        # the block's buffer (no copy into the cache, none again for the upload).
        immutable = type(mv.obj) is bytes
        pos, i, total = offset, 0, len(mv)
        while i < total:
            idx, start = divmod(pos, BLOCK_SIZE)
            n = min(BLOCK_SIZE - start, total - i)
            b = self.cache.get(cid, idx)
            if b is None:
                b = self.cache.add(Block(cid, idx))
            self.cache.mark_dirty(b, segment)
            if n == BLOCK_SIZE:  # a whole-block overwrite needs no base
                if immutable:
                    self.cache.adopt(b, mv[i:i + n])
                else:
                    b.loaded, b.cov = True, []
                    self.cache.write(b, start, mv[i:i + n])
            else:
                self.cache.write(b, start, mv[i:i + n])
            # A sequential writer that just filled the block will not touch it again:
            # upload now.  Other dirty blocks wait until they go idle (see _tick), so that
            # random overwrites do not re-hash and re-upload 4 MiB each time.
            if start + n == BLOCK_SIZE and (b.complete or covers(b.cov, 0, BLOCK_SIZE)):
                self.transfer.schedule(b)
            pos += n
            i += n

    async def write_at(self, content_id: str, offset: int, data: Any, sync: bool = True,
                       unstable: bool = False) -> None:
        with tracing.span("cache.write", **{"dittofs.bytes": len(data)}):
            await self._write_at(content_id, offset, data, sync, unstable)

    async def _write_at(self, content_id: str, offset: int, data: Any, sync: bool,
                        unstable: bool = False) -> None:
        while self.cache.dirty_bytes() >= self.dirty_cap:
            for b in list(self.cache.dirty.values()):
                self.transfer.schedule(b)
            d: defer.Deferred = defer.Deferred()
            self._space_waiters.append(d)
            await d
        segment, durable = (0, None) if self.wal is None else self.wal.append(
            W.OP_WRITE, content_id, offset, data, sync)
        self._apply_write(content_id, offset, data, segment)
        self.cache.evict()
        if durable is not None:
            # Unsynced, it is one write(2) into the page cache, done inline when the WAL
            # writer is idle: waiting for it keeps acknowledged bytes safe from a crash of
            # the process (and an append that failed from being acknowledged at all).
            if sync:
                with tracing.span("wal.fsync"):
                    await durable
            elif unstable and not durable.called and self._unwritten < MAX_UNWRITTEN:
                # The caller's client keeps the bytes until a flush succeeds and resends
                # them if the process restarts (NFS UNSTABLE: the write verifier changes):
                # answered from the cache, not after the writer thread, which cannot start
                # on the record while this thread holds the GIL copying it into the cache.
                # The next flush of the file waits for the record and reports its failure.
                n = len(data)
                self._unwritten += n
                durable.addBoth(self._unstable_written, content_id, n)
            else:
                await durable

    def _unstable_written(self, result: Any, content_id: str, n: int) -> None:
        self._unwritten -= n
        if isinstance(result, Failure) and content_id not in self._lost:
            log.warn("an unstable write of {cid} is not in the WAL ({err}): the next "
                     "flush of the file fails", cid=content_id, err=result.value)
            self._lost[content_id] = result

    def _raise_lost(self, content_id: str) -> None:
        """Report, once, an unstable write of the file whose WAL record failed: the bytes
        are in the cache but not durable, so the flush that would promise it fails."""
        failure = self._lost.pop(content_id, None)
        if failure is not None:
            failure.raiseException()

    async def read_at(self, content_id: str, offset: int, count: int) -> bytes:
        idx, start = divmod(offset, BLOCK_SIZE)
        if start + count <= BLOCK_SIZE:  # the common case: one block
            b = self.cache.get(content_id, idx)
            if b is not None and (b.complete or covers(b.cov, start, start + count)):
                piece = _view(b.buf, start, count)
                if len(piece) == count:
                    return bytes(piece)  # one copy (none for a whole adopted block)
                return b"".join((piece, bytes(count - len(piece))))
        # Make every block needed present first, then copy them out in one pass: a view
        # of a block's bytearray must not live across an await (a write could resize it).
        spans = []
        pos, end = offset, offset + count
        omap = None
        while pos < end:
            idx, start = divmod(pos, BLOCK_SIZE)
            n = min(BLOCK_SIZE - start, end - pos)
            b = self.cache.get(content_id, idx)
            if b is None or not (b.complete or covers(b.cov, start, start + n)):
                if omap is None:
                    omap = await self.objects.transact(
                        lambda t: t.object_blocks(content_id), write=False)
                b = await self._load(content_id, idx, omap.get(idx))
            spans.append((b, start, n))
            pos += n
        pieces = []
        for b, start, n in spans:
            piece = _view(b.buf, start, n) if b is not None else b""
            pieces.append(piece)
            if len(piece) < n:  # a hole, or past the end of the block's content
                pieces.append(bytes(n - len(piece)))
        out = b"".join(pieces)
        self.cache.evict()
        return out

    async def _load(self, cid: str, idx: int, digest: bytes | None) -> Block | None:
        """The complete block ``idx`` of ``cid``, or None where it is a hole."""
        b = self.cache.get(cid, idx)
        if b is None:
            if digest is None:
                return None
            data = await self.transfer.fetch(digest)
            b = self.cache.get(cid, idx)  # a write may have created it meanwhile
            if b is None:
                b = Block(cid, idx, base=digest)
                b.adopt(bytes(data))  # no copy when the store gave bytes
                return self.cache.add(b)
            if not b.complete:
                b.base = digest
                self.cache.merge(b, data)
            return b
        await self.transfer.ensure_complete(b, retry=False)
        return b

    async def _truncate(self, cid: str, size: int, segment: int, durable: bool = True,
                        covered: bool = True) -> None:
        keep, tail = divmod(size, BLOCK_SIZE)
        await self.transfer.drop_from(cid, keep + (1 if tail else 0), durable, covered)
        if tail:
            b = self.cache.get(cid, keep)
            if b is None:
                omap = await self.objects.transact(lambda t: t.object_blocks(cid), write=False)
                b = await self._load(cid, keep, omap.get(keep))
            else:
                await self.transfer.ensure_complete(b)
            if b is not None and len(b.buf) > tail:
                self.cache.truncate(b, tail)
                self.cache.mark_dirty(b, segment)
                b.version += 1

    async def truncate(self, content_id: str, size: int, sync: bool = True) -> None:
        segment, durable = (0, None) if self.wal is None else self.wal.append(
            W.OP_TRUNCATE, content_id, size, b"", sync)
        if durable is not None and sync:
            await durable
        # The synced WAL record stands for the block-map change: it need not sync again;
        # unsynced (writeback), nothing waits for an fsync.
        await self._truncate(content_id, size, segment, durable=sync and durable is None,
                             covered=sync)

    async def delete(self, content_id: str, sync: bool = True,
                     unlinked: bytes | None = None) -> bool:
        """Drop a file's content; True if the change is durable (when ``sync``) or will
        be with the next WAL sync, which the caller's metadata sync need not cover."""
        self._lost.pop(content_id, None)
        if unlinked is not None and self.wal is not None:
            # The WAL record carries the unlink and is synced (or left to the next WAL
            # sync): it stands for the namespace change and for the block-map drop, both
            # committed before it without an fsync (a segment is trimmed only after a
            # metadata sync, which covers them).  The blobs the drop frees wait for that
            # sync too: until then a crash can bring back the file, which replay then
            # removes again.
            await self.transfer.drop_from(content_id, 0, durable=False, covered=False)
            await self.wal.append(W.OP_DELETE, content_id, 0, unlinked, sync=sync)[1]
            return True
        # The block-map change itself is committed durably when ``sync`` (one metadata
        # fsync, which also covers the unsynced namespace change the caller made just
        # before); the WAL record is not waited for: where replay can ask whether the file
        # still exists it goes by that instead (see start).
        if self.wal is not None:
            self.wal.append(W.OP_DELETE, content_id, 0, b"", False)
        await self.transfer.drop_from(content_id, 0, durable=sync, covered=sync)
        return sync

    async def log_create(self, content_id: str, created: bytes, sync: bool = True) -> bool:
        """Make a file's creation durable in the WAL (a synced record, replayed through
        ``restore_create``; ``sync`` False: written, durable with the next WAL sync);
        False without a WAL: the caller syncs its metadata itself.  The creation must be
        committed to the store first (a segment is trimmed only after a metadata sync,
        which then covers it)."""
        if self.wal is None:
            return False
        await self.wal.append(W.OP_CREATE, content_id, 0, created, sync=sync)[1]
        return True

    async def sync_log(self) -> None:
        if self.wal is not None:
            await self.wal.sync()

    async def flush(self, content_id: str, remote: bool = False,
                    attrs: bytes | None = None) -> bool:
        with tracing.span("cache.flush", **{"dittofs.remote": remote}):
            return await self._flush(content_id, remote, attrs)

    async def _flush(self, content_id: str, remote: bool, attrs: bytes | None) -> bool:
        if remote:
            await self.transfer.wait_clean(self.cache.file_blocks(content_id))
            if self.transfer.lazy_maps:  # the block maps those uploads changed
                await self.objects.sync()
            return False
        if self.wal is None:
            return False
        try:
            if attrs is None:
                await self.wal.sync()  # after every record queued before it
            else:
                # One fsync for the content and the metadata: the record goes after every
                # write to the file, and the segment holding it is trimmed only after a
                # metadata sync (_sync_round), which covers the commit these attributes
                # came from.
                await self.wal.append(W.OP_ATTRS, content_id, 0, attrs, sync=True)[1]
        except Exception:
            # This flush fails: that reports an unstable write whose record failed before
            # (or in the same batch as) its own, so the next flush need not fail again.
            self._lost.pop(content_id, None)
            raise
        self._raise_lost(content_id)
        return attrs is not None

    # -- statistics -------------------------------------------------------------

    async def stats(self) -> dict:
        files, logical = await self.objects.usage()
        nblocks, stored = await self.objects.transact(lambda t: t.block_totals(), write=False)
        return {
            "logical_bytes": logical, "stored_bytes": stored, "stored_blocks": nblocks,
            "dedup_ratio": (logical / stored) if stored else 1.0,
            "cache_bytes": self.cache.bytes(), "dirty_bytes": self.cache.dirty_bytes(),
            "evictions": self.cache.evictions, "uploads": self.transfer.uploads,
            "dedup_hits": self.transfer.dedup_hits, "upload_errors": self.transfer.errors,
            "wal_bytes": self.wal.size() if self.wal is not None else 0,
        }
