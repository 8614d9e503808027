"""TransferManager: uploads dirty cache blocks in the background, deduplicated by SHA-256.

For each block: merge it over its stored base if needed, hash it (hash pool), and under
a per-digest lock ask the object store whether the digest is known.  A new digest is
uploaded, then the file's block map and the reference counts change in one metadata
transaction (under a per-file lock shared with truncate and delete).  A digest whose
count drops to zero is deleted from the block store.  Failures are retried with
exponential backoff; a failing store is logged once per incident, not once per block.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from dittofs import coroutines, tracing
from dittofs.payload.cache import UNKNOWN, Block, Cache

log = Logger(namespace="dittofs.payload")

BACKOFF_START = 0.2
BACKOFF_MAX = 10.0
#: Blocks up to this size are hashed on the reactor: SHA-256 of 16 KiB takes ~20 us here,
#: less than the reactor's own share of a hand-off to the hash pool and back (~40 us).
INLINE_HASH_BYTES = 16 << 10


class _Locks:
    """DeferredLocks by key, created on demand and forgotten when idle."""

    def __init__(self) -> None:
        self._locks: dict[Any, defer.DeferredLock] = {}

    async def acquire(self, key: Any) -> defer.DeferredLock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = defer.DeferredLock()
        await lock.acquire()
        return lock

    def release(self, key: Any, lock: defer.DeferredLock) -> None:
        lock.release()
        if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
            del self._locks[key]


class TransferManager:
    def __init__(self, cache: Cache, store: Any, objects: Any, namespace: str, hash_pool: Any,
                 reactor: Any, concurrency: int = 4,
                 on_progress: Callable[[], None] | None = None, lazy_maps: bool = False,
                 pressing: Callable[[], bool] | None = None) -> None:
        """``pressing()``: True while writes wait for cache space (uploads are then
        urgent)."""
        self.cache = cache
        self.store = store
        self.objects = objects  # the IMetadataStore holding block maps and refcounts
        self.ns = namespace
        self.hash_pool = hash_pool
        self.reactor = reactor
        self.concurrency = concurrency
        self.on_progress = on_progress or (lambda: None)
        self.pressing = pressing or (lambda: False)
        # With a WAL, the block-map change after an upload is not synced on its own: the
        # payload service trims the WAL segments holding those bytes, and deletes the
        # blobs such changes freed, only after its next metadata sync.
        self.lazy_maps = lazy_maps
        self.unsynced_releases: list[bytes] = []
        self.queue: deque[Block] = deque()
        self.queued: set[tuple[str, int]] = set()
        self.active = 0
        self._pumping = False
        self.digest_locks = _Locks()
        self.content_locks = _Locks()
        self.clean_waiters: dict[tuple[str, int], list[defer.Deferred]] = {}
        self.upload_latency: Any = None  # a Prometheus histogram child when metrics are on
        self.failing: set[str] = set()  # kinds of operation in a logged incident
        self.uploads = 0
        self.dedup_hits = 0
        self.upload_bytes = 0
        self.errors = 0

    def key(self, digest: bytes) -> str:
        return f"{self.ns}/{digest.hex()}"

    # -- scheduling ----------------------------------------------------------

    def schedule(self, block: Block) -> None:
        k = (block.cid, block.idx)
        if (block.dropped or k in self.queued or block in self.cache.uploading
                or not block.dirty):
            return
        self.queued.add(k)
        self.queue.append(block)
        self._pump()

    def _pump(self) -> None:
        # An upload can complete as soon as it is started (a small block hashed inline
        # and already stored, or a store that answers at once); its _done calls _pump
        # again, which then leaves the next block to the loop already running here
        # instead of recursing once per block.
        if self._pumping:
            return
        self._pumping = True
        try:
            while self.active < self.concurrency and self.queue:
                b = self.queue.popleft()
                self.queued.discard((b.cid, b.idx))
                if b.dropped or not b.dirty or b in self.cache.uploading:
                    continue
                self.active += 1
                try:
                    done, d = coroutines.start(self._upload(b))
                except Exception:
                    done, d = False, defer.fail()
                if done:  # completed without waiting (a small block already stored)
                    self._done(None, b)
                    continue
                d.addErrback(lambda f: log.failure("upload failed unexpectedly", f))
                d.addBoth(self._done, b)
        finally:
            self._pumping = False

    def _done(self, _: Any, b: Block) -> None:
        self.active -= 1
        if b.dirty and not b.dropped:
            # Written again while it was uploading: uploaded again at once only for a
            # caller that waits for it (a flush, a shutdown) or for cache space; else once
            # it goes idle (the payload service's tick), as any dirty block.  Random
            # overwrites would otherwise re-hash and re-store its 4 MiB after every upload
            # for as long as they go on (seen: 115 uploads during 20,000 4 KiB writes).
            if (b.cid, b.idx) in self.clean_waiters or self.pressing():
                self.schedule(b)
        else:
            self._notify(b)
        self.on_progress()
        self._pump()

    def _notify(self, b: Block) -> None:
        for d in self.clean_waiters.pop((b.cid, b.idx), []):
            d.callback(None)

    def wait_clean(self, blocks: list[Block]) -> defer.Deferred:
        """Fire once each of ``blocks`` is uploaded (or dropped)."""
        ds = []
        for b in blocks:
            if (b.dirty or b in self.cache.uploading) and not b.dropped:
                d: defer.Deferred = defer.Deferred()
                self.clean_waiters.setdefault((b.cid, b.idx), []).append(d)
                ds.append(d)
                self.schedule(b)
        return defer.gatherResults(ds) if ds else defer.succeed(None)

    # -- the upload ----------------------------------------------------------

    async def _retry(self, what: str, fn: Callable[[], Any], abandon: Callable[[], bool],
                     kind: str = "block store") -> Any:
        """Run ``fn`` until it succeeds (or ``abandon()``), backing off exponentially.  The
        first failure of a ``kind`` (the block store, the metadata store) is logged once,
        and so is its recovery."""
        delay = BACKOFF_START
        while True:
            try:
                result = await fn()
                if kind in self.failing:
                    self.failing.discard(kind)
                    log.info("{kind} of {name}: {what} works again", kind=kind,
                             name=self.store.name, what=what)
                return result
            except Exception as e:
                self.errors += 1
                if kind not in self.failing:
                    self.failing.add(kind)
                    log.error("{kind} of {name}: {what} failed ({err}); retrying until it "
                              "works", kind=kind, name=self.store.name, what=what, err=repr(e))
                if abandon():
                    raise
                await task.deferLater(self.reactor, delay, lambda: None)
                delay = min(delay * 2, BACKOFF_MAX)

    async def base_digest(self, block: Block) -> Any:
        if block.base is UNKNOWN:
            omap = await self.objects.transact(lambda t: t.object_blocks(block.cid), write=False)
            if block.base is UNKNOWN:
                block.base = omap.get(block.idx)
                if block.base is None:
                    block.loaded = True
                    block.cov = []
        return block.base

    async def fetch(self, digest: bytes) -> bytes:
        return await tracing.around("blockstore.get", self.store.get, self.key(digest))

    async def ensure_complete(self, block: Block, retry: bool = True) -> None:
        """Merge a partly written block over its stored content."""
        if block.complete:
            return
        digest = await self.base_digest(block)
        if block.complete:
            return
        if retry:
            data = await self._retry("read", lambda: self.fetch(digest), lambda: block.dropped)
        else:
            data = await self.fetch(digest)
        if not block.complete:
            self.cache.merge(block, data)

    def _hash(self, data: bytes) -> defer.Deferred:
        if len(data) <= INLINE_HASH_BYTES:
            return defer.succeed(hashlib.sha256(data).digest())
        return self.hash_pool.run(lambda: hashlib.sha256(data).digest())

    async def _upload(self, b: Block) -> None:
        self.cache.start_upload(b)
        try:
            await self.ensure_complete(b)
            if b.dropped:
                return
            version = b.version
            # Not copied: a bytearray becomes a read-only view, an immutable buffer like
            # adopted bytes, so a later write or truncate replaces it (copy on write)
            # instead of changing what is being hashed and stored.
            data = b.buf
            if type(data) is bytearray:
                data = b.buf = memoryview(data).toreadonly()
            digest = await self._hash(data)
            lock = await self.digest_locks.acquire(digest)
            try:
                known = await self._retry(
                    "refcount", lambda: self.objects.transact(
                        lambda t: t.block_refcount(digest), write=False), lambda: False,
                    "metadata store")
                if not known:
                    started = self.reactor.seconds()
                    await self._retry("upload", lambda: tracing.around(
                        "blockstore.put", self.store.put, self.key(digest), data),
                        lambda: b.dropped)
                    if self.upload_latency is not None:
                        self.upload_latency.observe(self.reactor.seconds() - started)
                    self.uploads += 1
                    self.upload_bytes += len(data)
                else:
                    self.dedup_hits += 1
                released = await self._commit(b, digest, len(data))
                if released is None and not known:
                    # The block went away meanwhile: the blob just stored is referenced by
                    # nothing.
                    await self.store.delete(self.key(digest))
            finally:
                self.digest_locks.release(digest, lock)
            if released:
                if self.lazy_maps:
                    self.unsynced_releases.append(released)
                else:
                    await self.release(released)
            if released is not None:
                b.base = digest
                if b.version == version:
                    self.cache.mark_clean(b)
        except Exception:
            if not b.dropped:
                raise
        finally:
            self.cache.end_upload(b)

    async def _commit(self, b: Block, digest: bytes, size: int) -> Any:
        """Point block ``b.idx`` of its file at ``digest``.  Return the digest it replaced if
        that lost its last reference, b"" if nothing was released, None if ``b`` is gone."""
        lock = await self.content_locks.acquire(b.cid)
        try:
            if b.dropped:
                return None

            def fn(t: Any) -> bytes:
                old = t.object_blocks(b.cid).get(b.idx)
                if old == digest:
                    return b""
                t.block_incref(digest, size)
                t.set_object_block(b.cid, b.idx, digest)
                if old is not None and t.block_decref(old) == 0:
                    return old
                return b""
            return await self._retry(
                "block map update",
                lambda: self.objects.transact(fn, durable=not self.lazy_maps),
                lambda: False, "metadata store")
        finally:
            self.content_locks.release(b.cid, lock)

    async def release(self, digest: bytes) -> None:
        """Delete a block whose last reference went, unless one came back meanwhile."""
        lock = await self.digest_locks.acquire(digest)
        try:
            n = await self.objects.transact(lambda t: t.block_refcount(digest), write=False)
            if n == 0:
                try:
                    await self.store.delete(self.key(digest))
                except Exception as e:
                    log.warn("block store {name}: could not delete {key}: {err}",
                             name=self.store.name, key=self.key(digest), err=repr(e))
        finally:
            self.digest_locks.release(digest, lock)

    async def drop_from(self, cid: str, first_idx: int, durable: bool = True,
                        covered: bool = True) -> None:
        """Forget blocks ``first_idx`` and later of ``cid``: cache, block map, references.

        ``durable`` False when a synced WAL record (delete, truncate) already stands for
        this change (a crash that loses it replays the record, which drops again), or
        when nothing need be synced now (the writeback tier).  ``covered`` False in the
        latter case: the blobs it frees are deleted only after the next metadata sync, so
        a crash that loses the change never leaves a block map pointing at nothing."""
        for b in self.cache.file_blocks(cid):
            if b.idx >= first_idx:
                self.cache.drop(cid, b.idx)
                self._notify(b)
        lock = await self.content_locks.acquire(cid)
        try:
            def fn(t: Any) -> list[bytes]:
                gone = []
                for idx, digest in t.object_blocks(cid).items():
                    if idx >= first_idx:
                        t.set_object_block(cid, idx, None)
                        if t.block_decref(digest) == 0:
                            gone.append(digest)
                return gone
            released = await self.objects.transact(fn, durable=durable)
        finally:
            self.content_locks.release(cid, lock)
        if not (durable or covered):
            self.unsynced_releases.extend(released)
            return
        for digest in released:
            await self.release(digest)

    def take_unsynced_releases(self) -> list[bytes]:
        taken, self.unsynced_releases = self.unsynced_releases, []
        return taken

    async def release_all(self, digests: list[bytes]) -> None:
        """Release blobs freed by block-map changes that are now synced.  If the metadata
        store fails, the rest wait for the next sync round: nothing else would delete
        them."""
        for i, digest in enumerate(digests):
            try:
                await self.release(digest)
            except Exception:
                self.unsynced_releases[:0] = digests[i:]
                raise

