"""One conformance suite for every IMetadataStore backend, through MetadataService.

Each test runs against memory, LMDB and a real PostgreSQL (a throwaway cluster).
"""

from __future__ import annotations

import threading
import uuid

import pytest
import pytest_twisted
from twisted.internet import defer
from zope.interface.verify import verifyObject

from dittofs import threads as TH
from dittofs.metadata import errors as E
from dittofs.metadata.interfaces import IMetadataStore, ITransaction
from dittofs.metadata.service import MetadataService
from dittofs.metadata.stores.lmdb import LmdbMetadataStore
from dittofs.metadata.stores.memory import MemoryMetadataStore
from dittofs.metadata.stores.postgres import PostgresMetadataStore
from dittofs.metadata.types import FileType, Identity, SetAttrs
from dittofs.runtime.shares import Share

ALICE = Identity(1000, 1000, ())
BACKENDS = ["memory", "lmdb", "postgres"]


class Backend:
    """Makes stores of one kind; ``reopen`` gives a new instance on the same data."""

    def __init__(self, kind, tmp_path, request):
        self.kind = kind
        self.tmp = tmp_path
        self.request = request
        self.schema = "t_" + uuid.uuid4().hex[:12]
        self.open_stores = []

    def make(self, name="m"):
        if self.kind == "memory":
            store = MemoryMetadataStore(name)
        elif self.kind == "lmdb":
            store = LmdbMetadataStore(name, self.tmp / "lmdb")
        else:
            pg = self.request.getfixturevalue("postgres")
            store = PostgresMetadataStore(name, pg.url, schema=self.schema)
        self.open_stores.append(store)
        return store

    def close_all(self):
        return defer.DeferredList([s.close() for s in self.open_stores])


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    b = Backend(request.param, tmp_path, request)
    yield b
    pytest_twisted.blockon(b.close_all())


async def share_on(store, name="/s"):
    share = Share(name, hash(name) & 0xFFFF, store, None)  # content is not touched here
    share.root_id = await MetadataService().ensure_root(share, 0, 0, 0o777)
    return share


md = MetadataService()


@pytest_twisted.ensureDeferred
async def test_interfaces(backend):
    store = backend.make()
    assert verifyObject(IMetadataStore, store)
    assert await store.transact(lambda txn: verifyObject(ITransaction, txn))


@pytest_twisted.ensureDeferred
async def test_two_shares_on_one_store_are_isolated(backend):
    store = backend.make()
    a = await share_on(store, "/a")
    b = await share_on(store, "/b")
    assert a.root_id != b.root_id
    await md.create(a, ALICE, a.root_id, b"same", FileType.REG)
    await md.create(b, ALICE, b.root_id, b"same", FileType.REG)
    _, listing, _ = await md.readdir(a, ALICE, a.root_id, 0, 100, plus=False)
    assert [e.name for e, _ in listing] == [b".", b"..", b"same"]
    assert await md.ensure_root(a, 0, 0, 0o777) == a.root_id


@pytest_twisted.ensureDeferred
async def test_create_lookup_getattr(backend):
    share = await share_on(backend.make())
    made = await md.create(share, ALICE, share.root_id, b"f", FileType.REG, SetAttrs(mode=0o640))
    assert made.dir_pre.size == 0 and made.dir_post.mtime >= made.dir_pre.mtime
    f = made.file
    assert (f.ftype, f.mode, f.uid, f.gid, f.nlink, f.size) == (FileType.REG, 0o640, 1000,
                                                                1000, 1, 0)
    child, d = await md.lookup(share, ALICE, share.root_id, b"f")
    assert child == f and d.fileid == share.root_id
    assert await md.getattr(share, f.fileid) == f
    with pytest.raises(E.NotFound):
        await md.lookup(share, ALICE, share.root_id, b"missing")
    with pytest.raises(E.Exists):
        await md.create(share, ALICE, share.root_id, b"f", FileType.REG)
    s = (await md.create(share, ALICE, share.root_id, b"ln", FileType.LNK,
                         target=b"/some/where")).file
    assert (await md.readlink(share, ALICE, s.fileid)).target == b"/some/where"


@pytest_twisted.ensureDeferred
async def test_walk_follows_a_path_in_one_go(backend):
    share = await share_on(backend.make())
    a = (await md.create(share, ALICE, share.root_id, b"a", FileType.DIR)).file
    b = (await md.create(share, ALICE, a.fileid, b"b", FileType.DIR)).file
    f = (await md.create(share, ALICE, b.fileid, b"f", FileType.REG)).file
    assert await md.walk(share, ALICE, share.root_id, [b"a", b"b", b"f"]) == (b.fileid, f)
    assert await md.walk(share, ALICE, share.root_id, [b"a"]) == (
        share.root_id, await md.getattr(share, a.fileid))
    assert await md.walk(share, ALICE, share.root_id, [b"a", b"b", b"new"]) == (b.fileid,
                                                                                 None)
    with pytest.raises(E.NotFound):
        await md.walk(share, ALICE, share.root_id, [b"a", b"gone", b"f"])
    with pytest.raises(E.NotDirectory):
        await md.walk(share, ALICE, share.root_id, [b"a", b"b", b"f", b"x"])
    with pytest.raises(E.InvalidArgument):
        await md.walk(share, ALICE, share.root_id, [])
    await md.setattr(share, ALICE, b.fileid, SetAttrs(mode=0o600))  # no search permission
    with pytest.raises(E.AccessDenied):
        await md.walk(share, ALICE, share.root_id, [b"a", b"b", b"f"])
    assert await md.walk(share, ALICE, share.root_id, [b"a", b"b"]) == (
        a.fileid, await md.getattr(share, b.fileid))  # the last name needs no search right


@pytest_twisted.ensureDeferred
async def test_readdir_cookies_survive_removal_and_plus_has_records(backend):
    share = await share_on(backend.make())
    names = [b"n%03d" % i for i in range(120)]
    for n in names:
        await md.create(share, ALICE, share.root_id, n, FileType.REG)
    seen, cookie = [], 0
    first = True
    while True:
        _, chunk, eof = await md.readdir(share, ALICE, share.root_id, cookie, 25, plus=True)
        for e, rec in chunk:
            assert rec is not None and rec.fileid == e.fileid
        seen += [e.name for e, _ in chunk]
        if first:
            first = False
            for n in names[60:80]:  # removed while listing: must not disturb the rest
                await md.remove(share, ALICE, share.root_id, n, rmdir=False)
        if eof:
            break
        cookie = chunk[-1][0].cookie
    assert seen[:2] == [b".", b".."]
    assert [n for n in seen[2:]] == [n for n in names if n not in names[60:80]]


@pytest_twisted.ensureDeferred
async def test_rename_replace_and_failed_rename_changes_nothing(backend):
    share = await share_on(backend.make())
    root = share.root_id
    a = (await md.create(share, ALICE, root, b"a", FileType.REG)).file
    b = (await md.create(share, ALICE, root, b"b", FileType.REG)).file
    r = await md.rename(share, ALICE, root, b"a", root, b"b")
    assert r.replaced.fileid == b.fileid
    assert (await md.lookup(share, ALICE, root, b"b"))[0].fileid == a.fileid
    with pytest.raises(E.Stale):
        await md.getattr(share, b.fileid)
    d1 = (await md.create(share, ALICE, root, b"d1", FileType.DIR)).file
    d2 = (await md.create(share, ALICE, root, b"d2", FileType.DIR)).file
    await md.create(share, ALICE, d2.fileid, b"inside", FileType.REG)
    before = await md.readdir(share, ALICE, root, 0, 100, plus=True)
    with pytest.raises(E.NotEmpty):
        await md.rename(share, ALICE, root, b"d1", root, b"d2")
    assert await md.readdir(share, ALICE, root, 0, 100, plus=True) == before
    await md.rename(share, ALICE, root, b"d1", d2.fileid, b"moved")
    moved = await md.getattr(share, d1.fileid)
    assert moved.parent == d2.fileid
    assert (await md.getattr(share, d2.fileid)).nlink == 3


@pytest_twisted.ensureDeferred
async def test_hard_links_and_last_link(backend):
    share = await share_on(backend.make())
    root = share.root_id
    f = (await md.create(share, ALICE, root, b"f", FileType.REG)).file
    rec, _, _ = await md.link(share, ALICE, f.fileid, root, b"g")
    assert rec.nlink == 2
    gone = await md.remove(share, ALICE, root, b"f", rmdir=False)
    assert not gone.freed and gone.victim.nlink == 1
    gone = await md.remove(share, ALICE, root, b"g", rmdir=False)
    assert gone.freed
    with pytest.raises(E.Stale):
        await md.getattr(share, f.fileid)


@pytest_twisted.ensureDeferred
async def test_failing_transaction_is_all_or_nothing(backend):
    store = backend.make()
    share = await share_on(store)
    await md.create(share, ALICE, share.root_id, b"keep", FileType.REG)
    usage = await store.usage()
    listing = await md.readdir(share, ALICE, share.root_id, 0, 100, plus=True)

    def partial(txn):
        fid = txn.new_fileid()
        txn.add_entry(share.root_id, b"half", fid)
        txn.remove_entry(share.root_id, b"keep")
        txn.block_incref(b"\1" * 32, 4096)
        txn.add_usage(1, 100)
        raise E.StoreIOError("simulated failure")

    with pytest.raises(E.StoreIOError):
        await store.transact(partial)
    assert await md.readdir(share, ALICE, share.root_id, 0, 100, plus=True) == listing
    assert await store.usage() == usage
    assert await store.transact(lambda t: t.block_refcount(b"\1" * 32)) == 0


@pytest_twisted.ensureDeferred
async def test_usage_follows_creates_writes_and_removes(backend):
    store = backend.make()
    share = await share_on(store)
    files0, bytes0 = await store.usage()
    f = (await md.create(share, ALICE, share.root_id, b"f", FileType.REG)).file
    await md.commit_write(share, f.fileid, 5000)
    await md.setattr(share, ALICE, f.fileid, SetAttrs(size=3000))
    assert await store.usage() == (files0 + 1, bytes0 + 3000)
    await md.remove(share, ALICE, share.root_id, b"f", rmdir=False)
    assert await store.usage() == (files0, bytes0)


@pytest_twisted.ensureDeferred
async def test_object_store_refcounts(backend):
    store = backend.make()
    h1, h2 = b"\xaa" * 32, b"\xbb" * 32

    def put(txn):
        assert txn.block_incref(h1, 4096) == 1
        assert txn.block_incref(h1, 4096) == 2
        assert txn.block_incref(h2, 100) == 1
        txn.set_object_block("c1", 0, h1)
        txn.set_object_block("c1", 1, h2)
        txn.set_object_block("c2", 0, h1)
    await store.transact(put)
    assert await store.transact(lambda t: t.object_blocks("c1"), write=False) == {0: h1, 1: h2}
    assert await store.transact(lambda t: t.block_refcount(h1), write=False) == 2

    def drop(txn):
        txn.set_object_block("c1", 1, None)
        return txn.block_decref(h2), txn.block_decref(h1), txn.block_decref(h1)
    assert await store.transact(drop) == (0, 1, 0)
    assert await store.transact(lambda t: t.object_blocks("c1"), write=False) == {0: h1}
    assert await store.transact(lambda t: t.block_refcount(h1), write=False) == 0


@pytest_twisted.ensureDeferred
async def test_many_concurrent_creates(backend):
    share = await share_on(backend.make())
    results = await defer.gatherResults([
        defer.ensureDeferred(md.create(share, ALICE, share.root_id, b"c%d" % i, FileType.REG))
        for i in range(100)])
    assert len({r.file.fileid for r in results}) == 100
    d = await md.getattr(share, share.root_id)
    _, listing, eof = await md.readdir(share, ALICE, share.root_id, 0, 500, plus=False)
    assert eof and len(listing) == 102 and d.nlink == 2
    cookies = [e.cookie for e, _ in listing]
    assert cookies == sorted(set(cookies))


@pytest_twisted.ensureDeferred
async def test_claim_fileid_marks_only_ids_never_issued(backend):
    store = backend.make()
    share = await share_on(store)
    f = (await md.create(share, ALICE, share.root_id, b"f", FileType.REG)).file
    assert await store.transact(lambda t: t.claim_fileid(f.fileid)) is False
    assert await store.transact(lambda t: t.claim_fileid(f.fileid - 1)) is False
    assert await store.transact(lambda t: t.claim_fileid(f.fileid + 10)) is True
    assert await store.transact(lambda t: t.claim_fileid(f.fileid + 10)) is False
    g = (await md.create(share, ALICE, share.root_id, b"g", FileType.REG)).file
    assert g.fileid > f.fileid + 10  # a claimed id is never handed out

    def claim_then_fail(t):
        t.claim_fileid(g.fileid + 5)
        raise RuntimeError("rolled back")
    with pytest.raises(RuntimeError):
        await store.transact(claim_then_fail)
    h = (await md.create(share, ALICE, share.root_id, b"h", FileType.REG)).file
    assert h.fileid > g.fileid


@pytest_twisted.ensureDeferred
async def test_persistent_stores_keep_everything_across_reopen(backend):
    if backend.kind == "memory":
        pytest.skip("the memory store is not persistent by design")
    store = backend.make()
    share = await share_on(store)
    d = (await md.create(share, ALICE, share.root_id, b"dir", FileType.DIR)).file
    f = (await md.create(share, ALICE, d.fileid, b"file", FileType.REG)).file
    await md.commit_write(share, f.fileid, 1234)
    await store.close()
    again = backend.make()
    share2 = await share_on(again)
    assert share2.root_id == share.root_id
    assert (await md.getattr(share2, f.fileid)).size == 1234
    child, _ = await md.lookup(share2, ALICE, d.fileid, b"file")
    assert child.fileid == f.fileid
    g = (await md.create(share2, ALICE, d.fileid, b"new", FileType.REG)).file
    assert g.fileid > f.fileid  # ids are never reused


@pytest_twisted.ensureDeferred
async def test_lmdb_sync_covers_lazy_writes_and_is_free_when_there_are_none(tmp_path):
    """The payload's background round syncs the store every few hundred ms: with no
    non-durable write since the last sync it must not reach the disk; after one it must."""
    store = LmdbMetadataStore("m", tmp_path / "lmdb")
    try:
        batches = []
        process = store.writer.process
        store.writer.process = lambda items: (batches.append(list(items)), process(items))[1]
        share = await share_on(store)
        await store.sync()
        before = len(batches)
        for _ in range(3):
            await store.sync()
        assert len(batches) == before  # nothing new: no fsync, no thread hop
        f = (await md.create(share, ALICE, share.root_id, b"f", FileType.REG)).file
        await store.transact(lambda t: t.put(t.get(f.fileid)._replace(size=7)), durable=False)
        await store.sync()
        assert any(item == (None, True) for item in batches[-1])  # that sync went to disk
        n = len(batches)
        await store.sync()
        assert len(batches) == n
        # A durable commit's fsync covers the lazy writes before it: nothing left to sync.
        await store.transact(lambda t: t.put(t.get(f.fileid)._replace(size=8)), durable=False)
        await store.transact(lambda t: t.put(t.get(f.fileid)._replace(size=9)))
        n = len(batches)
        await store.sync()
        assert len(batches) == n
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_lmdb_durable_commits_are_done_on_the_quiet_reactor_while_fsyncs_are_quick(
        tmp_path, monkeypatch):
    where = []  # on the calling thread, for each fsync
    real = LmdbMetadataStore._sync_env

    def spy(self):
        real(self)
        where.append(threading.current_thread() is threading.main_thread())

    monkeypatch.setattr(LmdbMetadataStore, "_sync_env", spy)
    monkeypatch.setattr(TH, "INLINE_SYNC_SECONDS", 10.0)  # never too slow here
    quiet = [True]
    store = LmdbMetadataStore("m", tmp_path / "lmdb", inline_sync=lambda: quiet[0])
    try:
        share = await share_on(store)
        del where[:]
        d = defer.ensureDeferred(md.create(share, ALICE, share.root_id, b"a", FileType.REG))
        assert d.called and where == [True]  # committed and fsynced before it returned
        f = (await d).file
        quiet[0] = False  # a call waits for the reactor: the writer thread does it
        await store.transact(lambda t: t.put(t.get(f.fileid)._replace(size=1)))
        assert where[-1] is False
        quiet[0] = True
        store.sync_here.seconds = 10.0  # the last fsync was slow: not on the reactor
        await store.transact(lambda t: t.put(t.get(f.fileid)._replace(size=2)))
        assert where[-1] is False and store.sync_here.seconds < 10.0  # measured again
        await store.transact(lambda t: t.put(t.get(f.fileid)._replace(size=3)))
        assert where[-1] is True
        await store.transact(lambda t: t.put(t.get(f.fileid)._replace(size=4)), durable=False)
        await store.sync()  # a sync of lazy writes, too
        assert where[-1] is True and len(where) == 5
    finally:
        await store.close()
    again = LmdbMetadataStore("m", tmp_path / "lmdb")
    try:
        assert (await again.get(f.fileid)).size == 4
    finally:
        await again.close()
