"""The payload path: coverage, eviction, backpressure, WAL replay, dedup refcounts and GC."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface.verify import verifyObject

from dittofs import threads as TH
from dittofs.metadata.errors import StoreIOError
from dittofs.metadata.stores.memory import MemoryMetadataStore
from dittofs.payload import service as service_module
from dittofs.payload import transfer as T
from dittofs.payload import wal as W
from dittofs.payload.blockstores.fs import FsBlockStore
from dittofs.payload.blockstores.memory import MemoryBlockStore
from dittofs.payload.cache import BLOCK_SIZE, Block, Cache, add_interval, covers
from dittofs.payload.interfaces import IBlockStore, IPayloadService
from dittofs.payload.service import CachedPayloadService
from dittofs.threads import LazyPool
from tests.support.vectors import hexv
from tests.support.wal import gate_wal_writer

MB = 1024 * 1024


# -- pure pieces -----------------------------------------------------------------

def test_intervals():
    cov = []
    for s, e in [(10, 20), (30, 40), (15, 32), (0, 5), (5, 6), (100, 101)]:
        cov = add_interval(cov, s, e)
    assert cov == [(0, 6), (10, 40), (100, 101)]
    assert covers(cov, 12, 40) and not covers(cov, 5, 11) and not covers(cov, 99, 101)


def test_cache_accounting_and_lru_eviction():
    c = Cache(max_bytes=250)
    blocks = [c.add(Block(f"f{i}", 0, base=None)) for i in range(3)]
    for b in blocks:
        c.write(b, 0, b"x" * 100)
    assert c.bytes() == 300 and c.dirty_bytes() == 0
    c.mark_dirty(blocks[0], 1)
    assert c.dirty_bytes() == 100
    c.get("f1", 0)  # f1 used recently: f2 is the least recently used clean block
    assert c.evict() == 100 and c.get("f2", 0) is None and c.get("f1", 0) is not None
    assert c.evictions == 1
    c.mark_clean(blocks[0])
    assert c.dirty_bytes() == 0 and c.oldest_segment() is None


def test_oldest_segment_is_held_by_dirty_and_uploading_blocks_not_dropped_ones():
    c = Cache(max_bytes=1 << 20)
    a, b = c.add(Block("a", 0, base=None)), c.add(Block("b", 0, base=None))
    c.add(Block("clean", 0, base=None))
    c.mark_dirty(a, 5)
    c.mark_dirty(b, 3)
    c.start_upload(b)
    assert c.uploading == {b} and c.oldest_segment() == 3
    c.drop("b", 0)  # deleted while its upload runs: it holds no segment any more
    assert c.oldest_segment() == 5 and b not in c.uploading
    c.end_upload(b)
    assert not c.uploading
    c.mark_clean(a)
    assert c.oldest_segment() is None


def test_block_merge_keeps_newer_writes():
    b = Block("f", 0, base=b"digest")
    assert not b.complete
    b.write(2, b"NEW")
    b.merge_base(b"0123456789")
    assert bytes(b.buf) == b"01NEW56789" and b.complete


def test_wal_record_vector_and_torn_tail():
    parts = W.encode_parts(W.OP_WRITE, "m/00001", 16, b"hello", W.segment_seed(3))
    wire = b"".join(parts)
    body = hexv("""
        01                  op WRITE
        0007                content id length 7
        0000000000000010    offset 16
        6d2f3030303031      content id m/00001
        68656c6c6f          data hello
    """)
    import zlib
    seed = zlib.crc32(bytes.fromhex("0000000000000003"))  # the segment number, 8 bytes
    assert wire == (zlib.crc32(body, seed).to_bytes(4, "big") + len(body).to_bytes(4, "big")
                    + body)
    two = wire + b"".join(W.encode_parts(W.OP_TRUNCATE, "m/00001", 3, b"", seed))
    recs, end = W.decode_stream(two, 3)
    assert [(r.op, r.content_id, r.offset, r.data, r.segment) for r in recs] == [
        (W.OP_WRITE, "m/00001", 16, b"hello", 3), (W.OP_TRUNCATE, "m/00001", 3, b"", 3)]
    for cut in range(len(wire), len(two)):  # a torn second record is dropped, not misread
        recs, end = W.decode_stream(two[:cut], 3)
        assert len(recs) == 1 and end == len(wire)
    flipped = bytearray(two)
    flipped[-1] ^= 0xFF
    assert len(W.decode_stream(bytes(flipped), 3)[0]) == 1
    # Records a reused file keeps from an earlier segment are not taken for this one's.
    assert W.decode_stream(two, 4) == ([], 0)
    fresh = b"".join(W.encode_parts(W.OP_TRUNCATE, "x", 1, b"", W.segment_seed(4)))
    recs, end = W.decode_stream(fresh + two, 4)
    assert [r.content_id for r in recs] == ["x"] and end == len(fresh)


# -- the service over real threads -------------------------------------------------

class GatedStore(MemoryBlockStore):
    """A memory block store whose puts wait until the test opens the gate."""

    def __init__(self):
        super().__init__("gated")
        self.open = True
        self.waiting: list = []
        self.fail = False

    def put(self, key, data):
        if self.fail:
            return defer.fail(ConnectionError("store is down"))
        if self.open:
            return super().put(key, data)
        d = defer.Deferred()
        self.waiting.append((d, key, data))
        return d

    def release(self):
        self.open = True
        for d, key, data in self.waiting:
            self.blobs[key] = bytes(data)
            d.callback(None)
        self.waiting = []


@pytest.fixture()
def hash_pool():
    pool = LazyPool("test-hash", 2)
    yield pool
    pool.stop()


def make(hash_pool, store=None, objects=None, wal_dir=None, cache_bytes=64 * MB):
    store = store or MemoryBlockStore()
    objects = objects or MemoryMetadataStore("m")
    wal = W.Wal(wal_dir) if wal_dir is not None else None
    return CachedPayloadService("p", store, objects, hash_pool, wal=wal, cache_bytes=cache_bytes)


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest_twisted.ensureDeferred
async def test_interfaces(hash_pool, tmp_path):
    p = make(hash_pool)
    assert verifyObject(IPayloadService, p)
    assert verifyObject(IBlockStore, MemoryBlockStore())
    assert verifyObject(IBlockStore, FsBlockStore("fs", tmp_path))


@pytest_twisted.ensureDeferred
async def test_read_write_sparse_unaligned_and_truncate(hash_pool):
    p = make(hash_pool)
    await p.start()
    await p.write_at("f", BLOCK_SIZE - 3, b"abcdef")  # straddles two blocks
    assert await p.read_at("f", BLOCK_SIZE - 5, 10) == b"\0\0abcdef\0\0"
    assert await p.read_at("f", 5 * BLOCK_SIZE, 4) == b"\0\0\0\0"  # a hole
    await p.flush("f", remote=True)
    assert len(p.store.blobs) == 2
    await p.truncate("f", BLOCK_SIZE - 1)
    assert await p.read_at("f", BLOCK_SIZE - 4, 6) == b"\0ab\0\0\0"
    await p.flush("f", remote=True)
    await p.truncate("f", BLOCK_SIZE + 10)  # extending reads zeros, never old bytes
    assert await p.read_at("f", BLOCK_SIZE - 4, 8) == b"\0ab\0\0\0\0\0"
    await p.close()


@pytest_twisted.ensureDeferred
async def test_partial_overwrite_of_an_uploaded_and_evicted_block(hash_pool):
    p = make(hash_pool, cache_bytes=BLOCK_SIZE)
    await p.start()
    data = os.urandom(BLOCK_SIZE)
    await p.write_at("f", 0, data)
    await p.flush("f", remote=True)
    await p.write_at("g", 0, os.urandom(BLOCK_SIZE))  # pushes f's clean block out
    await p.flush("g", remote=True)
    p.cache.evict()
    assert p.cache.get("f", 0) is None and p.cache.evictions >= 1
    await p.write_at("f", 100, b"PATCH")  # base unknown: only the patch is in cache
    expect = data[:100] + b"PATCH" + data[105:]
    assert await p.read_at("f", 0, BLOCK_SIZE) == expect  # merged with the stored block
    await p.flush("f", remote=True)
    assert sha(expect) in {k.split("/")[1] for k in p.store.blobs}
    await p.close()


@pytest_twisted.ensureDeferred
async def test_whole_blocks_of_immutable_bytes_are_kept_without_a_copy(hash_pool):
    p = make(hash_pool, store=GatedStore())
    await p.start()
    p.store.open = False  # uploads wait: the cache alone answers reads
    message = b"HDR" + os.urandom(2 * BLOCK_SIZE + 10)  # like a received 8 MiB SMB WRITE
    await p.write_at("f", 0, memoryview(message)[3:])
    b0, b1, tail = (p.cache.get("f", i) for i in range(3))
    assert b0.buf.obj is message and b1.buf.obj is message  # adopted, not copied
    assert type(tail.buf) is bytearray and p.cache.bytes() == 2 * BLOCK_SIZE + 10
    await p.write_at("f", 5, b"PATCH")  # copy on write: the message itself never changes
    expect = message[3:8] + b"PATCH" + message[13:]
    assert message[8:13] != b"PATCH" and type(b0.buf) is bytearray
    assert await p.read_at("f", 0, 2 * BLOCK_SIZE + 10) == expect
    await p.truncate("f", BLOCK_SIZE + 7)  # cuts an adopted block: a shorter view
    kept = message[3 + BLOCK_SIZE:10 + BLOCK_SIZE]
    assert await p.read_at("f", BLOCK_SIZE, 10) == kept + bytes(3)
    p.store.release()
    await p.flush("f", remote=True)
    assert {k.split("/")[1] for k in p.store.blobs} >= {
        sha(expect[:BLOCK_SIZE]), sha(expect[BLOCK_SIZE:BLOCK_SIZE + 7])}
    mutable = bytearray(os.urandom(BLOCK_SIZE))  # a buffer the caller may reuse: copied
    await p.write_at("g", 0, mutable)
    before = bytes(mutable)
    mutable[:4] = b"XXXX"
    assert await p.read_at("g", 0, BLOCK_SIZE) == before
    await p.close()


@pytest_twisted.ensureDeferred
async def test_an_upload_is_handed_the_blocks_buffer_and_later_changes_copy_it(hash_pool):
    p = make(hash_pool, store=GatedStore())
    await p.start()
    p.store.open = False  # the upload holds what it was handed until the test releases it
    first = os.urandom(BLOCK_SIZE)
    for off in range(0, BLOCK_SIZE - MB, MB):
        await p.write_at("f", off, first[off:off + MB])
    b = p.cache.get("f", 0)
    grown = b.buf  # the block's bytearray, written in place
    await p.write_at("f", BLOCK_SIZE - MB, first[-MB:])  # the block is full: upload
    await _settle()
    [(_, key, handed)] = p.store.waiting
    assert handed is b.buf and handed.obj is grown and handed.readonly  # no snapshot copy
    await p.write_at("f", 10, b"PATCH")  # copy on write: the upload's bytes never change
    await p.truncate("f", BLOCK_SIZE - 100)
    assert bytes(handed) == first and handed is not b.buf
    assert key.split("/")[1] == sha(first)
    expect = first[:10] + b"PATCH" + first[15:BLOCK_SIZE - 100]
    assert await p.read_at("f", 0, BLOCK_SIZE) == expect + bytes(100)
    p.store.release()  # stores what it was handed, as it is now
    assert p.store.blobs[key] == first
    await p.flush("f", remote=True)
    assert sha(expect) in {k.split("/")[1] for k in p.store.blobs}
    b = p.cache.get("f", 0)  # uploaded again: handed out again, and a truncate copies
    handed = b.buf
    assert type(handed) is memoryview and handed.readonly
    await p.truncate("f", 20)
    assert bytes(handed) == expect and await p.read_at("f", 0, 30) == expect[:20] + bytes(10)
    await p.close()


def wal_records(wal):
    return [r for n in wal.segments() for r in W.decode_stream(wal._path(n).read_bytes(), n)[0]]


@pytest_twisted.ensureDeferred
async def test_unstable_writes_are_answered_before_their_wal_record_is_written(
        hash_pool, tmp_path, monkeypatch):
    p = make(hash_pool, wal_dir=tmp_path / "wal")
    await p.start()
    opened = gate_wal_writer(p.wal)
    data = os.urandom(MB)  # a large record: always the writer thread's
    await p.write_at("f", 0, data, sync=False, unstable=True)  # the writer is held
    assert await p.read_at("f", 0, MB) == data and not wal_records(p.wal)
    flushed = defer.ensureDeferred(p.flush("f"))
    monkeypatch.setattr(service_module, "MAX_UNWRITTEN", MB)  # this much is queued: wait
    second = defer.ensureDeferred(p.write_at("f", MB, data, sync=False, unstable=True))
    await _settle(0.1)
    assert not flushed.called and not second.called
    opened.set()
    await flushed
    await second
    assert [(r.op, r.content_id, r.offset, r.data) for r in wal_records(p.wal)][:1] == [
        (W.OP_WRITE, "f", 0, data)]
    await p.close()


@pytest_twisted.ensureDeferred
async def test_a_failed_wal_record_of_an_unstable_write_fails_the_next_flush_once(
        hash_pool, tmp_path):
    p = make(hash_pool, wal_dir=tmp_path / "wal")
    await p.start()
    gate_wal_writer(p.wal, fail=True).set()
    data = os.urandom(MB)
    await p.write_at("f", 0, data, sync=False, unstable=True)
    await _settle(0.1)
    await p.write_at("g", 0, data, sync=False, unstable=True)
    await p.flush("g")  # another file's flush does not report it
    with pytest.raises(StoreIOError):
        await p.flush("f")
    await p.flush("f")  # reported once, as fsync(2) reports a lost write-back
    await p.write_at("h", 0, data, sync=False)  # not unstable: the write itself waits
    await p.close()


@pytest_twisted.ensureDeferred
async def test_a_block_written_during_its_upload_is_stored_again_once_idle(hash_pool):
    """A block written again while it uploads is stored again once the writes stop (the
    idle tick), not after each upload for as long as they go on; a flush waiting for it
    gets the bytes written last at once."""
    from dittofs.payload.service import IDLE_TICK
    store = GatedStore()
    p = make(hash_pool, store=store)
    await p.start()
    try:
        data = os.urandom(BLOCK_SIZE)
        store.open = False
        await p.write_at("f", 0, data)  # a whole block: uploaded at once
        await _settle(0.05)
        assert len(store.waiting) == 1
        await p.write_at("f", 100, b"again")
        store.release()
        for i in range(int(3 * IDLE_TICK / 0.1)):  # overwrites go on for 3 ticks
            await _settle(0.1)
            await p.write_at("f", 200 + i, b"!")
            assert p.transfer.uploads == 1, i
        await _settle(2.5 * IDLE_TICK)  # idle: stored again, once
        assert p.transfer.uploads == 2 and not p.cache.dirty
        final = await p.read_at("f", 0, BLOCK_SIZE)
        assert sha(final) in {k.rpartition("/")[2] for k in store.blobs}

        p._ticker.stop()  # from here only a waiting flush uploads
        store.open = False
        await p.write_at("g", 0, data)
        await _settle(0.05)
        flushed = defer.ensureDeferred(p.flush("g", remote=True))
        await p.write_at("g", 0, b"newer")
        store.release()
        await flushed.addTimeout(5, reactor)  # both uploads, at once
        maps = await p.objects.transact(lambda t: t.object_blocks("g"), write=False)
        assert maps[0].hex() == sha(b"newer" + data[5:])
    finally:
        await p.close()


@pytest_twisted.ensureDeferred
async def test_dedup_refcounts_and_gc(hash_pool):
    p = make(hash_pool)
    await p.start()
    data = os.urandom(2 * BLOCK_SIZE + 1000)
    for name in ("a", "b", "c"):
        await p.write_at(name, 0, data)
        await p.flush(name, remote=True)
    assert len(p.store.blobs) == 3  # two full blocks and a tail, stored once
    stats = await p.stats()
    assert stats["stored_bytes"] == len(data) and p.transfer.dedup_hits == 6
    await p.write_at("a", 0, b"Z" * BLOCK_SIZE)  # a's first block changes
    await p.flush("a", remote=True)
    assert len(p.store.blobs) == 4
    for name in ("a", "b", "c"):
        await p.delete(name)
    assert p.store.blobs == {}
    assert await p.objects.transact(lambda t: t.block_totals(), write=False) == (0, 0)
    await p.close()


class CountingPool:
    def __init__(self, pool):
        self.pool, self.calls = pool, []

    def run(self, fn, *args):
        self.calls.append(fn)
        return self.pool.run(fn, *args)


@pytest_twisted.ensureDeferred
async def test_small_blocks_are_hashed_without_the_pool_and_large_ones_in_it(hash_pool):
    pool = CountingPool(hash_pool)
    p = make(pool)
    await p.start()
    small, large = os.urandom(T.INLINE_HASH_BYTES), os.urandom(T.INLINE_HASH_BYTES + 1)
    await p.write_at("s", 0, small)
    await p.flush("s", remote=True)
    assert pool.calls == []
    await p.write_at("l", 0, large)
    await p.flush("l", remote=True)
    assert len(pool.calls) == 1
    assert {k.split("/")[1] for k in p.store.blobs} == {sha(small), sha(large)}
    assert await p.read_at("s", 0, len(small)) == small
    await p.close()


@pytest_twisted.ensureDeferred
async def test_uploads_that_finish_at_once_leave_the_schedulers_intact(hash_pool):
    """Small blocks hashed inline, already stored (dedup) or put into a store that answers
    at once: the whole upload completes inside schedule(), for thousands of blocks."""
    p = make(hash_pool)
    await p.start()
    page = os.urandom(4096)
    for i in range(3000):
        await p.write_at(f"f{i}", 0, page)
    p._tick()
    p._tick()  # the second tick schedules every block the first one saw unchanged
    assert not p.cache.dirty
    # Every upload slot taken by a put that waits; thousands of small blocks queue
    # behind them and, once the gate opens, each completes at once.
    p.store = p.transfer.store = GatedStore()
    p.store.open = False
    for i in range(p.transfer.concurrency):
        await p.write_at(f"slow{i}", 0, os.urandom(100))
    slow = [defer.ensureDeferred(p.flush(f"slow{i}", remote=True))
            for i in range(p.transfer.concurrency)]
    assert len(p.store.waiting) == p.transfer.concurrency
    p.store.blobs[f"{p.transfer.ns}/{sha(page)}"] = page
    for i in range(3000):
        await p.write_at(f"g{i}", 0, page)
    flushes = [defer.ensureDeferred(p.flush(f"g{i}", remote=True)) for i in range(3000)]
    assert len(p.transfer.queue) == 3000
    p.store.release()
    await defer.gatherResults(slow + flushes)
    assert not p.cache.dirty and not p.transfer.queue
    await p.close()


@pytest_twisted.ensureDeferred
async def test_backpressure_waits_instead_of_failing(hash_pool):
    store = GatedStore()
    store.open = False
    p = make(hash_pool, store=store, cache_bytes=4 * BLOCK_SIZE)  # dirty cap: 3 blocks
    await p.start()
    for i in range(3):
        await p.write_at("f", i * BLOCK_SIZE, os.urandom(BLOCK_SIZE))
    blocked = defer.ensureDeferred(p.write_at("f", 3 * BLOCK_SIZE, b"more"))
    await _settle()
    assert not blocked.called and p.cache.dirty_bytes() >= p.dirty_cap
    store.release()
    await blocked
    assert await p.read_at("f", 3 * BLOCK_SIZE, 4) == b"more"
    await p.close()


async def _settle(seconds=0.2):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d


@pytest_twisted.ensureDeferred
async def test_wal_replay_after_a_crash(hash_pool, tmp_path):
    objects = MemoryMetadataStore("m")
    store = GatedStore()
    store.open = False  # nothing reaches the block store before the "crash"
    p = make(hash_pool, store=store, objects=objects, wal_dir=tmp_path / "wal")
    await p.start()
    await p.write_at("f", 0, b"first version")
    await p.write_at("f", 6, b"VERSION and more")
    await p.write_at("g", 10, b"gone soon")
    await p.delete("g")
    await p.write_at("h", 0, b"0123456789")
    await p.truncate("h", 4)
    p._ticker.stop()  # the process dies here: the cache is lost, the WAL is not
    p.wal.close()
    with open(p.wal._path(p.wal.segment), "ab") as fh:
        fh.write(b"".join(W.encode_parts(W.OP_WRITE, "f", 0, b"TORN!",
                                         W.segment_seed(p.wal.segment)))[:-3])
    store2 = MemoryBlockStore()
    q = make(hash_pool, store=store2, objects=objects, wal_dir=tmp_path / "wal")
    assert await q.start() == 6
    assert await q.read_at("f", 0, 22) == b"first VERSION and more"
    assert await q.read_at("g", 10, 9) == bytes(9)
    assert await q.read_at("h", 0, 10) == b"0123" + bytes(6)
    await q.flush("f", remote=True)
    await q.flush("h", remote=True)
    assert sha(b"first VERSION and more") in {k.split("/")[1] for k in store2.blobs}
    await _settle(0.5)  # segments go once the block maps are synced (every 200 ms)
    assert q.wal.segments() == [q.wal.segment] or not q.wal.segments()  # old ones trimmed
    await q.close()


@pytest_twisted.ensureDeferred
async def test_replay_keeps_files_that_exist_and_drops_files_that_do_not(hash_pool, tmp_path):
    objects, store = MemoryMetadataStore("m"), MemoryBlockStore()
    p = make(hash_pool, store=store, objects=objects, wal_dir=tmp_path / "wal")
    await p.start()
    await p.write_at("gone", 0, b"uploaded before the crash")
    await p.flush("gone", remote=True)
    await p.close()
    assert [k.split("/")[1] for k in store.blobs] == [sha(b"uploaded before the crash")]
    wal = W.Wal(tmp_path / "wal")  # what a crashed process left in its WAL
    for op, cid, data in [(W.OP_WRITE, "live", b"acknowledged"), (W.OP_DELETE, "live", b""),
                          (W.OP_WRITE, "gone", b"not uploaded"),
                          (W.OP_WRITE, "other", b"as before"), (W.OP_DELETE, "other", b"")]:
        await wal.append(op, cid, 0, data, sync=False)[1]
    await wal.sync()
    wal.close()
    asked = []

    async def owner_exists(cid):
        asked.append(cid)
        return {"live": True, "gone": False}.get(cid)  # "other": no answer

    q = CachedPayloadService("q", store, objects, hash_pool, wal=W.Wal(tmp_path / "wal"),
                             owner_exists=owner_exists)
    assert await q.start() >= 5
    assert sorted(asked) == ["gone", "live", "other"]  # once per file
    assert await q.read_at("live", 0, 12) == b"acknowledged"  # its delete record: ignored
    assert await q.read_at("gone", 0, 12) == bytes(12)  # nothing replayed, its map dropped
    assert sha(b"uploaded before the crash") not in {k.split("/")[1] for k in store.blobs}
    assert await q.read_at("other", 0, 9) == bytes(9)  # no answer: the WAL's order, as before
    await q.close()


@pytest_twisted.ensureDeferred
async def test_store_outage_is_retried_and_logged_once(hash_pool):
    from twisted.logger import globalLogPublisher
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        store = GatedStore()
        store.fail = True
        p = make(hash_pool, store=store)
        await p.start()
        await p.write_at("f", 0, os.urandom(BLOCK_SIZE))
        await p.write_at("f", BLOCK_SIZE, os.urandom(BLOCK_SIZE))
        await _settle(1.0)
        assert p.transfer.errors >= 4 and not store.blobs
        store.fail = False
        await p.flush("f", remote=True)
        assert len(store.blobs) == 2
        errors = [e for e in events if e.get("log_namespace") == "dittofs.payload"
                  and "failed" in e.get("log_format", "")]
        assert len(errors) == 1, [(e.get("what"), e.get("err")) for e in errors]
        await p.close()
    finally:
        globalLogPublisher.removeObserver(events.append)


@pytest_twisted.ensureDeferred
async def test_fs_block_store_atomic_files(tmp_path):
    s = FsBlockStore("fs", tmp_path)
    await s.put("ns/abcdef", b"data")
    assert await s.get("ns/abcdef") == b"data"
    assert await s.keys() == ["ns/abcdef"]
    assert (tmp_path / "ns" / "ab" / "abcdef").read_bytes() == b"data"
    await s.delete("ns/abcdef")
    with pytest.raises(KeyError):
        await s.get("ns/abcdef")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    await s.close()


@pytest_twisted.ensureDeferred
async def test_writeback_tier_is_fsynced_within_the_interval(hash_pool, tmp_path):
    p = CachedPayloadService("p", MemoryBlockStore(), MemoryMetadataStore("m"), hash_pool,
                             wal=W.Wal(tmp_path / "wal"), wal_sync_ms=100)
    synced = []
    real_sync = p.objects.sync
    p.objects.sync = lambda: synced.append(p.wal.syncs) or real_sync()
    await p.start()
    await p.write_at("f", 0, b"acknowledged from memory", sync=False)
    assert p.wal.syncs == 0
    await _settle(0.4)
    assert p.wal.syncs >= 1
    assert synced and synced[0] >= 1  # the metadata store too, after the WAL
    recs = list(W.Wal(tmp_path / "wal").replay())
    assert [r.data for r in recs] == [b"acknowledged from memory"]
    await p.close()


@pytest_twisted.ensureDeferred
async def test_a_synced_delete_is_one_durable_block_map_change(hash_pool, tmp_path):
    """delete(sync=True) commits its block-map change durably (the one metadata fsync that
    also covers the caller's namespace change) and releases the blobs at once; its WAL
    record is appended without an fsync of its own (replay asks whether the file exists)."""
    objects = MemoryMetadataStore("m")
    store = MemoryBlockStore()
    p = make(hash_pool, store=store, objects=objects, wal_dir=tmp_path / "wal")
    await p.start()
    await p.write_at("f", 0, os.urandom(BLOCK_SIZE + 100))
    await p.flush("f", remote=True)
    assert len(store.blobs) == 2
    durables, synced = [], []
    real_transact, real_append = objects.transact, p.wal.append

    def transact(fn, write=True, durable=True):
        durables.append(durable)
        return real_transact(fn, write, durable)

    def append(op, cid, offset, data=b"", sync=True):
        synced.append((op, sync))
        return real_append(op, cid, offset, data, sync)
    objects.transact, p.wal.append = transact, append
    await p.delete("f")
    objects.transact, p.wal.append = real_transact, real_append
    assert True in durables and False not in durables
    assert synced == [(W.OP_DELETE, False)]
    assert store.blobs == {} and await q_blocks(objects, "f") == {}
    await p.close()


async def q_blocks(objects, cid):
    return await objects.transact(lambda t: dict(t.object_blocks(cid)), write=False)


@pytest_twisted.ensureDeferred
async def test_wal_trim_deletes_only_segments_no_longer_needed(tmp_path):
    wal = W.Wal(tmp_path / "wal", segment_bytes=200)
    segs = []
    for i in range(6):
        seg, d = wal.append(W.OP_WRITE, "f", i * 150, b"x" * 150, sync=False)
        await d
        segs.append(seg)
    assert segs == [1, 2, 3, 4, 5, 6] and wal.segments() == segs
    wal.trim(3)
    assert wal.segments() == [3, 4, 5, 6]
    wal.trim(2)  # older than what is gone already: nothing to do
    assert wal.segments() == [3, 4, 5, 6]
    wal.trim(100)  # never the segment being appended to
    assert wal.segments() == [6]
    wal.close()
    again = W.Wal(tmp_path / "wal", segment_bytes=200)  # a restart starts a new segment
    seg, d = again.append(W.OP_WRITE, "f", 0, b"y", sync=True)
    await d
    assert seg == 7
    again.trim(7)
    assert again.segments() == [7]
    again.close()


@pytest_twisted.ensureDeferred
async def test_wal_segments_let_go_are_reused_and_replay_takes_only_new_records(
        tmp_path, monkeypatch):
    """Trimmed segments are kept (SPARE_SEGMENTS at most) and renamed for new ones: the
    new records overwrite the old, and replay stops where they end, although the old
    records are intact behind them.  Numbers are never used twice, across restarts."""
    monkeypatch.setattr(W, "SPARE_SEGMENTS", 2)
    wal = W.Wal(tmp_path / "wal", segment_bytes=1000)
    for i in range(4):  # 8 x 420 bytes: two records per segment, segments 1-4
        for k in range(2):
            await wal.append(W.OP_WRITE, "old", 800 * i + 400 * k, b"o" * 400, sync=False)[1]
    await wal.sync()
    inode = {n: wal._path(n).stat().st_ino for n in (1, 2, 3, 4)}
    wal.trim(4)
    assert wal.segments() == [4]
    assert spare_numbers(wal) == [1, 2]  # the third was deleted
    # A record as long as the old ones, in a new segment: the spare let go last.
    await wal.append(W.OP_WRITE, "new", 0, b"n" * 400, sync=True)[1]
    assert wal.segments() == [4, 5] and wal._path(5).stat().st_ino == inode[2]
    behind = wal._path(5).read_bytes()[422:]  # segment 2's second record, intact
    assert [(r.content_id, r.offset) for r in W.decode_stream(behind, 2)[0]] == [("old", 1200)]
    wal.close()
    again = W.Wal(tmp_path / "wal", segment_bytes=1000)
    got = [(r.content_id, r.offset, r.segment) for r in again.replay()]
    assert got == [("old", 2400, 4), ("old", 2800, 4), ("new", 0, 5)]
    assert again.segment == 6  # past every file's number, in spare 1 once written to
    again.trim(6)
    again.close()
    assert spare_numbers(again) == [1, 4, 5] and again.segments() == []
    third = W.Wal(tmp_path / "wal", segment_bytes=1000)  # keeps the newest two
    seg, d = third.append(W.OP_WRITE, "third", 0, b"t", sync=True)
    await d
    assert seg == 6 and third._path(6).stat().st_ino == inode[2]  # wal-5, then spare-5
    assert spare_numbers(third) == [4]
    third.close()
    assert [(r.content_id, r.segment) for r in W.Wal(tmp_path / "wal").replay()] == [
        ("third", 6)]


def spare_numbers(wal):
    return sorted(int(p.name[6:-4]) for p in wal.dir.glob("spare-*.log"))


@pytest_twisted.ensureDeferred
async def test_wal_spares_are_deleted_while_space_is_low(tmp_path):
    wal = W.Wal(tmp_path / "wal", segment_bytes=1000)
    try:
        for _ in range(3):
            await wal.append(W.OP_WRITE, "f", 0, b"x" * 900, sync=True)[1]
        wal.trim(3)
        assert spare_numbers(wal) == [1, 2]
        wal.reserve = 1 << 62  # more than any disk has: "nearly full"
        wal._check_space()
        assert wal.low_space and spare_numbers(wal) == []
        await wal.append(W.OP_DELETE, "f", 0, sync=True)[1]
        wal.trim(wal.segment)
        assert wal.segments() == [wal.segment] and spare_numbers(wal) == []
    finally:
        wal.close()


@pytest_twisted.ensureDeferred
async def test_wal_small_records_go_over_zeros_laid_ahead_and_replay_stops_there(tmp_path):
    seg_bytes = 3 * W.FILL_BYTES
    wal = W.Wal(tmp_path / "wal", segment_bytes=seg_bytes)
    records = [(W.OP_WRITE, "f", 1000 * i, os.urandom(700 + i % 300)) for i in range(4000)]
    pending = [wal.append(op, cid, off, data, sync=i % 97 == 0)[1]
               for i, (op, cid, off, data) in enumerate(records)]
    await defer.gatherResults(pending)
    await wal.sync()
    assert wal.segments() == [1, 2]  # ~3.9 MiB of records in 3 MiB segments
    first, second = (wal._path(n) for n in (1, 2))
    # The first segment is zero-filled to its end, the open one ahead of its records.
    assert first.stat().st_size == seg_bytes
    assert wal.size() == wal.appended < first.stat().st_size + second.stat().st_size
    tail = second.read_bytes()
    end = W.decode_stream(tail, 2)[1]
    assert W.FILL_BYTES // 2 <= len(tail) - end <= W.FILL_BYTES and not any(tail[end:])
    big = os.urandom(W.OFFLOAD_BYTES)  # bulk records are appended with nothing ahead
    bulk = W.Wal(tmp_path / "bulk")
    await bulk.append(W.OP_WRITE, "g", 0, big, sync=True)[1]
    assert bulk._path(1).stat().st_size == bulk.size() == bulk.appended
    bulk.close()
    wal.close()
    again = W.Wal(tmp_path / "wal", segment_bytes=seg_bytes)
    got = [(r.op, r.content_id, r.offset, bytes(r.data)) for r in again.replay()]
    assert got == records
    assert again.size() == wal.appended  # counted from the records, not the zeros
    seg, d = again.append(W.OP_TRUNCATE, "f", 5, sync=True)
    await d
    assert seg == 3
    again.close()
    assert list(W.Wal(tmp_path / "wal").replay())[-1][:3] == (W.OP_TRUNCATE, "f", 5)


@pytest_twisted.ensureDeferred
async def test_wal_large_records_are_encoded_by_the_writer_and_stay_in_order(tmp_path):
    wal = W.Wal(tmp_path / "wal")
    big = os.urandom(W.OFFLOAD_BYTES)
    pending = [wal.append(W.OP_WRITE, "f", 0, b"small before", sync=False)[1],
               wal.append(W.OP_WRITE, "f", 100, memoryview(big), sync=False)[1],
               wal.append(W.OP_WRITE, "f", 5, b"small after", sync=False)[1],
               wal.append(W.OP_TRUNCATE, "f", 7, sync=True)[1]]
    await defer.gatherResults(pending)
    size = wal.size()
    assert size == wal.appended  # what append reckoned is what the thread wrote
    wal.close()
    recs = list(W.Wal(tmp_path / "wal").replay())
    assert [(r.op, r.offset, bytes(r.data)) for r in recs] == [
        (W.OP_WRITE, 0, b"small before"), (W.OP_WRITE, 100, big),
        (W.OP_WRITE, 5, b"small after"), (W.OP_TRUNCATE, 7, b"")]


@pytest_twisted.ensureDeferred
async def test_wal_batches_are_written_whole_across_segments_and_short_writes(tmp_path,
                                                                              monkeypatch):
    real_writev, calls = os.writev, []

    def short_writev(fd, bufs):  # the kernel may take less than asked: take half
        calls.append(len(bufs))
        return real_writev(fd, [memoryview(b"".join(bytes(b) for b in bufs))[
            :max(1, sum(len(b) for b in bufs) // 2)]])
    monkeypatch.setattr(W.os, "writev", short_writev)
    wal = W.Wal(tmp_path / "wal", segment_bytes=4096)
    big = os.urandom(W.OFFLOAD_BYTES)  # goes to the writer thread, the rest queue behind
    first = wal.append(W.OP_WRITE, "f", 0, big, sync=False)[1]
    records = [(W.OP_WRITE, 1000 * i, os.urandom(300 + i)) for i in range(40)]
    pending = [first] + [wal.append(op, "f", off, data, sync=False)[1]
                         for op, off, data in records]
    await defer.gatherResults(pending)
    assert wal.size() == wal.appended
    assert len(wal.segments()) > 3 and max(calls) > 2  # several records per writev
    wal.close()
    got = [(r.op, r.offset, bytes(r.data)) for r in W.Wal(tmp_path / "wal").replay()]
    assert got == [(W.OP_WRITE, 0, big)] + records


def quiet_reactor(inline: bool, monkeypatch):
    """Wal's inline_sync: the reactor always quiet and fsyncs never too slow to be done on
    it, or no inline_sync at all."""
    if not inline:
        return None
    monkeypatch.setattr(TH, "INLINE_SYNC_SECONDS", 3600.0)
    return lambda: True


@pytest.mark.parametrize("inline", [False, True], ids=["syncer-thread", "inline"])
@pytest_twisted.ensureDeferred
async def test_wal_sync_covers_every_segment_written_before_it(tmp_path, monkeypatch, inline):
    synced = []  # (segment file, bytes of records in it) at each fdatasync
    threads = set()  # where the fdatasyncs ran
    real = os.fdatasync

    def spy(fd):
        real(fd)
        threads.add(threading.get_ident())
        path = os.readlink(f"/proc/self/fd/{fd}")
        with open(path, "rb") as fh:  # records end where zeros laid down ahead begin
            name = os.path.basename(path)
            synced.append((name, W.decode_stream(fh.read(), int(name[4:-4]))[1]))

    monkeypatch.setattr(W.os, "fdatasync", spy)
    wal = W.Wal(tmp_path / "wal", segment_bytes=300, inline_sync=quiet_reactor(inline, monkeypatch))
    try:
        for i in range(5):  # 101-byte records: two per segment, so segments 1-3
            seg, d = wal.append(W.OP_WRITE, "f", i * 81, b"x" * 81, sync=False)
            await d
        assert synced == [] and wal.segments() == [1, 2, 3]
        await wal.sync()
        assert synced == [(wal._path(n).name, size) for n, size in ((1, 202), (2, 202), (3, 101))]
        synced.clear()
        seg, d = wal.append(W.OP_WRITE, "f", 0, b"y", sync=True)  # fires once fdatasynced
        await d
        assert seg == 3 and synced == [(wal._path(3).name, 122)]  # older ones: done already

        def broken(fd):
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(W.os, "fdatasync", broken)
        with pytest.raises(StoreIOError):
            await wal.sync()
        monkeypatch.setattr(W.os, "fdatasync", spy)
        seg, d = wal.append(W.OP_WRITE, "f", 0, b"z", sync=True)  # a later sync still works
        await d
    finally:
        wal.close()
    assert [r.data for r in W.Wal(tmp_path / "wal").replay()][-2:] == [b"y", b"z"]
    assert (threads == {threading.get_ident()}) is inline


@pytest.mark.parametrize("inline", [False, True], ids=["syncer-thread", "inline"])
@pytest_twisted.ensureDeferred
async def test_wal_directory_is_synced_once_a_new_segment_exists(tmp_path, monkeypatch, inline):
    dir_syncs = []
    real = os.fsync

    def spy(fd):
        real(fd)
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            dir_syncs.append(fd)

    monkeypatch.setattr(W.os, "fsync", spy)
    wal = W.Wal(tmp_path / "wal", segment_bytes=300, inline_sync=quiet_reactor(inline, monkeypatch))
    try:
        await wal.sync()  # nothing appended yet: no segment file to name
        assert dir_syncs == []
        await wal.append(W.OP_WRITE, "f", 0, b"x", sync=True)[1]
        assert len(dir_syncs) == 1
        await wal.append(W.OP_WRITE, "f", 1, b"y", sync=True)[1]
        assert len(dir_syncs) == 1  # same segment: its name is durable already
        await wal.append(W.OP_WRITE, "f", 2, b"z" * 290, sync=True)[1]  # a new segment
        assert len(dir_syncs) == 2 and wal.segments() == [1, 2]
    finally:
        wal.close()


@pytest_twisted.ensureDeferred
async def test_wal_fsyncs_on_the_reactor_only_when_it_is_quiet_and_they_are_quick(tmp_path,
                                                                                monkeypatch):
    where = []  # the thread of each fdatasync
    real = os.fdatasync

    def spy(fd):
        real(fd)
        where.append(threading.get_ident())

    monkeypatch.setattr(W.os, "fdatasync", spy)
    monkeypatch.setattr(TH, "INLINE_SYNC_SECONDS", 10.0)  # fsyncs here are never that slow
    quiet = [True]
    wal = W.Wal(tmp_path / "wal", inline_sync=lambda: quiet[0])
    here = threading.get_ident()
    try:
        await wal.append(W.OP_WRITE, "f", 0, b"0", sync=False)[1]
        await wal.sync()  # the segment is open, zeros laid ahead: small records go inline
        del where[:]
        seg, d = wal.append(W.OP_WRITE, "f", 0, b"a", sync=True)
        assert d.called and where == [here]  # synced before append returned
        await d
        quiet[0] = False  # a call waits for the reactor: the syncer thread does it
        await wal.append(W.OP_WRITE, "f", 1, b"b", sync=True)[1]
        assert where[-1] != here
        quiet[0] = True
        wal.sync_here.seconds = TH.INLINE_SYNC_SECONDS  # the last fsync was slow: not here
        await wal.append(W.OP_WRITE, "f", 2, b"c", sync=True)[1]
        assert where[-1] != here and wal.sync_here.seconds < TH.INLINE_SYNC_SECONDS  # measured
        await wal.append(W.OP_WRITE, "f", 3, b"d", sync=True)[1]  # quick again: here
        assert where[-1] == here

        def broken(fd):
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(W.os, "fdatasync", broken)
        with pytest.raises(StoreIOError):  # a failed fsync fails the record, here too
            await wal.append(W.OP_WRITE, "f", 4, b"e", sync=True)[1]
    finally:
        wal.close()
    assert [bytes(r.data) for r in W.Wal(tmp_path / "wal").replay()] == [b"0", b"a", b"b",
                                                                         b"c", b"d", b"e"]


@pytest_twisted.ensureDeferred
async def test_with_a_wal_block_maps_are_synced_in_rounds_and_freed_blobs_wait_for_them(
        hash_pool, tmp_path):
    """An upload's block-map change does not sync on its own (the WAL still holds the
    bytes until the next round's metadata sync); a blob freed by a change nothing synced
    (a writeback-tier delete) is deleted only after that sync, so a crash cannot leave a
    block map pointing at a deleted blob."""
    objects = MemoryMetadataStore("m")
    store = MemoryBlockStore()
    p = CachedPayloadService("p", store, objects, hash_pool, wal=W.Wal(tmp_path / "wal"),
                             wal_sync_ms=100)
    seen, syncs = [], []
    real_transact, real_sync = objects.transact, objects.sync

    def transact(fn, write=True, durable=True):
        if write:
            seen.append(durable)
        return real_transact(fn, write, durable)

    def sync():
        syncs.append(len(store.blobs))
        return real_sync()
    objects.transact, objects.sync = transact, sync
    await p.start()
    await p.write_at("f", 0, os.urandom(BLOCK_SIZE + 10), sync=False)
    await p.flush("f", remote=True)  # uploaded, and the maps synced before it returns
    assert len(store.blobs) == 2 and seen and not any(seen) and syncs
    await p.delete("f", sync=False)
    assert len(store.blobs) == 2  # freed, but the change that freed them is not synced
    await _settle(0.4)
    assert store.blobs == {}
    assert await objects.transact(lambda t: t.block_totals(), write=False) == (0, 0)
    await p.close()


def test_write_errors_of_local_storage_become_domain_errors():
    import errno

    from dittofs.metadata import errors as E
    assert type(E.from_os_error(OSError(errno.ENOSPC, "full"), "WAL")) is E.NoSpace
    assert type(E.from_os_error(OSError(errno.EDQUOT, "quota"))) is E.NoSpace
    assert type(E.from_os_error(OSError(errno.EFBIG, "big"))) is E.FileTooBig
    assert type(E.from_os_error(OSError(errno.EIO, "io"))) is E.StoreIOError


@pytest_twisted.ensureDeferred
async def test_the_wal_refuses_writes_but_not_deletes_when_the_disk_is_nearly_full(tmp_path):
    from dittofs.metadata import errors as E
    wal = W.Wal(tmp_path / "wal")
    try:
        wal.reserve = 1 << 62  # more than any disk has: "nearly full"
        wal._check_space()
        with pytest.raises(E.NoSpace):
            wal.append(W.OP_WRITE, "f", 0, b"data", sync=False)
        _, d = wal.append(W.OP_DELETE, "f", 0, sync=False)  # freeing space still works
        await d
        wal.reserve = 0
        wal._checked_time = 0.0  # found low long enough ago: looked at again
        _, d = wal.append(W.OP_WRITE, "f", 0, b"data", sync=True)
        await d
        assert [r.op for r in wal.replay()] == [W.OP_DELETE, W.OP_WRITE]
    finally:
        wal.close()


def open_paths():
    """Paths this process holds open (deleted ones end in " (deleted)")."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


@pytest_twisted.ensureDeferred
async def test_a_roll_leaves_the_segment_for_a_new_one_and_lets_go_of_it(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "ROLL_BYTES", 1000)
    wal = W.Wal(tmp_path / "wal")
    try:
        _, d = wal.append(W.OP_WRITE, "f", 0, b"x" * 500, sync=True)
        await d
        assert not wal.roll() and wal.segment == 1  # not enough in it yet
        _, d = wal.append(W.OP_WRITE, "f", 500, b"y" * 600, sync=False)
        await d
        assert wal.roll() and wal.segment == 2
        await wal.sync()  # the roll's own sync is queued before this one
        old = str(wal._path(1))
        assert not any(p.startswith(old) for p in open_paths())  # writer and syncer let go
        wal.trim(wal.segment)
        assert wal.segments() == []
        seg, d = wal.append(W.OP_WRITE, "g", 0, b"z" * 10, sync=True)
        await d
        assert seg == 2 and wal.segments() == [2]
        assert [(r.content_id, r.segment) for r in wal.replay()] == [("g", 2)]
        assert not wal.roll()  # 10 bytes: below ROLL_BYTES...
        wal.low_space = True
        assert wal.roll() and wal.segment == 3  # ...but any at all while space is low
    finally:
        wal.close()


@pytest_twisted.ensureDeferred
async def test_records_of_deleted_files_leave_the_disk_without_more_writes(
        hash_pool, tmp_path, monkeypatch):
    """Files written and deleted: the background sync leaves the segment holding their
    records for a new one and lets go of it a round later (deleted, or kept as a spare
    while space is not low), although nothing more is appended (on a full disk nothing
    can be: every append would fail first)."""
    monkeypatch.setattr(W, "ROLL_BYTES", 64 * 1024)
    objects = MemoryMetadataStore("m")
    p = CachedPayloadService("p", MemoryBlockStore(), objects, hash_pool,
                             wal=W.Wal(tmp_path / "wal"), wal_sync_ms=50)
    await p.start()
    try:
        await p.write_at("f", 0, os.urandom(BLOCK_SIZE + 10), sync=True)
        await p.flush("f", remote=True)  # uploaded: nothing in the cache needs the WAL
        assert p.wal.segments() == [1]
        await p.delete("f", sync=True)
        for _ in range(40):
            await _settle(0.05)
            if not p.wal.segments():
                break
        assert p.wal.segments() == [] and p.wal.segment == 2
        assert not any(x.startswith(str(tmp_path / "wal")) for x in open_paths())
        await p.write_at("g", 0, b"after", sync=True)
        assert p.wal.segments() == [2]
        assert await p.read_at("g", 0, 5) == b"after"
    finally:
        await p.close()


@pytest_twisted.ensureDeferred
async def test_close_waits_for_a_background_sync_round_before_closing_the_store(hash_pool,
                                                                              tmp_path):
    """A shutdown in the middle of a background sync round: close (after which the server
    closes the metadata stores) waits for the round, so it never meets a closed store
    (seen: "background sync failed ... metadata store 'default' is closed" in a server's
    log at shutdown)."""
    objects = MemoryMetadataStore("m")
    p = CachedPayloadService("p", MemoryBlockStore(), objects, hash_pool,
                             wal=W.Wal(tmp_path / "wal"), wal_sync_ms=60000)
    await p.start()
    await p.write_at("f", 0, b"acknowledged from memory", sync=False)
    events, held = [], defer.Deferred()
    real_sync = objects.sync

    async def sync():
        first = "sync" not in events
        events.append("sync")
        if first:
            await held  # the background round, still at its metadata sync
        await real_sync()
        events.append("synced")

    objects.sync = lambda: defer.ensureDeferred(sync())
    p._sync_wal()  # as its timer starts it
    for _ in range(100):
        if events:
            break
        await _settle(0.01)
    assert events == ["sync"]
    closing = defer.ensureDeferred(p.close())
    await _settle(0.05)
    assert not closing.called and events == ["sync"]
    held.callback(None)
    await closing
    assert events == ["sync", "synced", "sync", "synced"]  # the round's, then close's own


@pytest_twisted.ensureDeferred
async def test_blobs_whose_release_failed_are_released_by_the_next_sync_round(hash_pool,
                                                                             tmp_path):
    """A blob freed by an unsynced delete is deleted after the next metadata sync; if the
    metadata store fails while that round releases it, the round after does it."""
    store = MemoryBlockStore()
    objects = MemoryMetadataStore("m")
    p = make(hash_pool, store=store, objects=objects, wal_dir=tmp_path / "wal")
    await p.start()
    try:
        await p.write_at("f", 0, os.urandom(BLOCK_SIZE + 100))
        await p.flush("f", remote=True)
        assert len(store.blobs) == 2
        assert not await p.delete("f", sync=False)
        assert len(store.blobs) == 2  # until the next metadata sync
        real_transact, failing = objects.transact, [1]

        def transact(fn, write=True, durable=True):
            if not write and failing:
                failing.clear()
                return defer.fail(StoreIOError("metadata store: EIO"))
            return real_transact(fn, write, durable)
        objects.transact = transact
        with pytest.raises(StoreIOError):
            await p._sync_round()
        assert len(store.blobs) == 2
        await p._sync_round()
        assert store.blobs == {}
    finally:
        await p.close()
