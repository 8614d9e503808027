"""COMMIT in the local tier: the metadata it must keep goes into the WAL with the content
(one fsync), and replay puts it back when the metadata store lost it."""

from __future__ import annotations

import shutil

import pytest
import pytest_twisted

from dittofs.metadata import errors as E
from dittofs.metadata.redo import (
    pack_unlinked,
    pack_written,
    restore_created,
    restore_unlinked,
    restore_written,
)
from dittofs.metadata.service import MetadataService
from dittofs.metadata.stores.lmdb import LmdbMetadataStore
from dittofs.metadata.stores.memory import MemoryMetadataStore
from dittofs.metadata.types import FileType, Identity, SetAttrs
from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat, StableHow
from dittofs.nfs.handlers import NfsHandlers
from dittofs.nfs.handles import HandleCodec
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from dittofs.payload import wal as W
from dittofs.payload.blockstores.fs import FsBlockStore
from dittofs.payload.service import CachedPayloadService
from dittofs.rpc.message import AuthUnix, RpcCall
from dittofs.rpc.program import CallContext
from dittofs.runtime.shares import Share, ShareTable, owner_exists, redo_hook
from dittofs.threads import LazyPool
from tests.support.wal import failing_wal_writer, gate_wal_writer

CTX = CallContext(RpcCall(1, 100003, 3, 1, 1, AuthUnix(0, b"h", 0, 0, ()), 0),
                  ("127.0.0.1", 800), 1)
ROOT = Identity(0, 0)


@pytest.fixture()
def hash_pool():
    pool = LazyPool("test-hash", 2)
    yield pool
    pool.stop()


async def serve(tmp_path, hash_pool):
    store = LmdbMetadataStore("m", tmp_path / "md")
    blocks = FsBlockStore("b", tmp_path / "blocks")
    payload = CachedPayloadService("p", blocks, store, hash_pool, wal=W.Wal(tmp_path / "wal"),
                                   owner_exists=owner_exists(store),
                                   restore_attrs=redo_hook(store, restore_written),
                                   restore_unlink=redo_hook(store, restore_unlinked),
                                   restore_create=redo_hook(store, restore_created))
    await payload.start()
    md = MetadataService()
    share = Share("/s", 9, store, payload, durability="local")
    share.root_id = await md.ensure_root(share, 0, 0, 0o777)
    shares = ShareTable()
    shares.add(share)
    handles = HandleCodec(b"k" * 32)
    return NfsHandlers(shares, md, handles), handles.make(9, share.root_id), share, md


def power_off(share):
    """Stop without the syncs a clean shutdown makes: what the metadata store did not
    fsync is lost by the caller restoring its files from a copy."""
    p = share.payload
    p._ticker.stop()
    p._wal_syncer.stop()
    p.wal.writer.stop()
    p.wal.syncer.stop()
    share.store.writer.stop()
    share.store.env.close()
    share.store._closed = True
    p.store.pool.stop()


@pytest_twisted.ensureDeferred
async def test_committed_size_survives_losing_the_unsynced_metadata(tmp_path, hash_pool,
                                                                   monkeypatch):
    h, root, share, md = await serve(tmp_path, hash_pool)
    try:
        await commit_one(h, root, share, md, tmp_path, monkeypatch)
    finally:
        if not share.store._closed:
            power_off(share)


async def commit_one(h, root, share, md, tmp_path, monkeypatch):
    st, made = await h.create(C.CreateArgs(DirOpArgs3(root, b"f"), (0, EMPTY_SATTR)), CTX)
    assert st == NfsStat.NFS3_OK
    fid = (await md.lookup(share, ROOT, share.root_id, b"f"))[0].fileid
    await share.store.sync()
    (tmp_path / "synced").mkdir()
    share.store.env.copy(str(tmp_path / "synced"))  # the store as its last fsync left it
    data = bytes(range(256)) * 40
    st, wrote = await h.write(C.WriteArgs(made.obj, 0, len(data), StableHow.UNSTABLE, data),
                              CTX)
    assert st == NfsStat.NFS3_OK and wrote.committed == StableHow.UNSTABLE
    syncs = []
    real_sync = share.store.sync
    monkeypatch.setattr(share.store, "sync", lambda: syncs.append(1) or real_sync())
    st, _ = await h.commit(C.CommitArgs(made.obj, 0, 0), CTX)
    assert st == NfsStat.NFS3_OK
    assert syncs == []  # one fsync (the WAL's) for content and metadata
    committed = await md.getattr(share, fid)
    power_off(share)
    shutil.rmtree(tmp_path / "md")
    (tmp_path / "synced").rename(tmp_path / "md")
    lost = LmdbMetadataStore("m", tmp_path / "md")
    assert (await lost.get(fid)).size == 0  # the write's size change never reached disk
    await lost.close()

    h2, root2, share2, md2 = await serve(tmp_path, hash_pool)
    try:
        rec = await md2.getattr(share2, fid)
        assert (rec.size, rec.mtime, rec.ctime) == (len(data), committed.mtime,
                                                     committed.ctime)
        assert await share2.payload.read_at(share2.content_id(fid), 0, len(data)) == data
        assert (await share2.store.usage())[1] >= len(data)
    finally:
        await share2.payload.close()
        await share2.store.close()


async def memory_share_with_file():
    """A share on a memory store (no payload) holding one empty regular file "f"."""
    store = MemoryMetadataStore("m")
    md = MetadataService()
    share = Share("/s", 9, store, None)
    share.root_id = await md.ensure_root(share, 0, 0, 0o777)
    f = (await md.create(share, ROOT, share.root_id, b"f", FileType.REG, SetAttrs())).file
    return store, md, share, f


@pytest_twisted.ensureDeferred
async def test_restore_leaves_a_file_changed_since_the_commit():
    store, md, share, f = await memory_share_with_file()
    _, written = await md.commit_write(share, f.fileid, 5000)
    logged = pack_written(written)
    await md.setattr(share, ROOT, f.fileid, SetAttrs(size=10))  # a later truncate, kept
    await restore_written(store, f.fileid, logged)
    assert (await store.get(f.fileid)).size == 10
    older = (await store.get(f.fileid))._replace(size=0, ctime=written.ctime - 1)
    await store.transact(lambda t: t.put(older))  # as if the write's commit was lost
    await restore_written(store, f.fileid, logged)
    rec = await store.get(f.fileid)
    assert (rec.size, rec.mtime, rec.ctime) == (5000, written.mtime, written.ctime)
    await restore_written(store, 12345, logged)  # a file that is gone: nothing to do


@pytest_twisted.ensureDeferred
async def test_replay_hands_logged_attrs_back_for_files_that_exist(tmp_path, hash_pool):
    store = MemoryMetadataStore("m")
    from dittofs.payload.blockstores.memory import MemoryBlockStore
    blocks = MemoryBlockStore()
    p = CachedPayloadService("p", blocks, store, hash_pool, wal=W.Wal(tmp_path / "wal"))
    await p.start()
    for cid in ("live", "gone"):
        await p.write_at(cid, 0, b"abc", sync=False)
        assert await p.flush(cid, attrs=cid.encode() + b"-attrs") is True
    assert await p.flush("live") is False  # no attrs: the caller syncs its metadata
    p.wal.close()
    got = []

    async def exists(cid):
        return cid == "live"

    async def restore(cid, attrs):
        got.append((cid, attrs))

    q = CachedPayloadService("q", blocks, store, hash_pool, wal=W.Wal(tmp_path / "wal"),
                             owner_exists=exists, restore_attrs=restore)
    await q.start()
    assert got == [("live", b"live-attrs")]
    await q.close()


@pytest_twisted.ensureDeferred
async def test_remove_makes_the_unlink_durable_in_the_wal(tmp_path, hash_pool, monkeypatch):
    h, root, share, md = await serve(tmp_path, hash_pool)
    try:
        st, made = await h.create(C.CreateArgs(DirOpArgs3(root, b"f"), (0, EMPTY_SATTR)), CTX)
        data = b"z" * 5000
        await h.write(C.WriteArgs(made.obj, 0, len(data), StableHow.UNSTABLE, data), CTX)
        commits, appends, real = [], [], share.store.transact

        def transact(fn, write=True, durable=True):
            if write:
                commits.append(durable)
            return real(fn, write, durable)
        monkeypatch.setattr(share.store, "transact", transact)
        monkeypatch.setattr(share.store, "sync", lambda: commits.append("sync") or real(
            lambda t: None))
        real_append = share.payload.wal.append
        monkeypatch.setattr(share.payload.wal, "append", lambda op, cid, off, data=b"",
                            sync=True: appends.append((op, bytes(data), sync))
                            or real_append(op, cid, off, data, sync))
        st, wcc = await h.remove(DirOpArgs3(root, b"f"), CTX)
        assert st == NfsStat.NFS3_OK
        # The namespace change and the block-map drop without an fsync of the store, then
        # one synced WAL record that carries the unlink.
        assert commits == [False, False]
        assert appends == [(W.OP_DELETE, pack_unlinked(share.root_id, b"f", wcc.after.ctime_s
                                                       * 10**9 + wcc.after.ctime_ns), True)]
    finally:
        power_off(share)


@pytest_twisted.ensureDeferred
async def test_removed_file_stays_removed_after_losing_the_unsynced_metadata(tmp_path,
                                                                            hash_pool):
    h, root, share, md = await serve(tmp_path, hash_pool)
    try:
        for name in (b"f", b"keep"):
            st, made = await h.create(C.CreateArgs(DirOpArgs3(root, name), (0, EMPTY_SATTR)),
                                      CTX)
            data = name * 3000
            await h.write(C.WriteArgs(made.obj, 0, len(data), StableHow.UNSTABLE, data), CTX)
            await h.commit(C.CommitArgs(made.obj, 0, 0), CTX)
        f = (await md.lookup(share, ROOT, share.root_id, b"f"))[0]
        cid = share.content_id(f.fileid)
        await share.payload.flush(cid, remote=True)  # uploaded and mapped
        await share.store.sync()
        (tmp_path / "synced").mkdir()
        share.store.env.copy(str(tmp_path / "synced"))  # the store as its last fsync left it
        files_before = (await share.store.usage())[0]
        digest = (await share.store.transact(lambda t: t.object_blocks(cid), write=False))[0]
        fsyncs, real_finish = [], share.store.writer.finish
        share.store.writer.finish = lambda: fsyncs.append(1) or real_finish()
        st, wcc = await h.remove(DirOpArgs3(root, b"f"), CTX)
        assert st == NfsStat.NFS3_OK
        assert fsyncs == []  # so the copy is what a power loss now would leave
    finally:
        power_off(share)
    shutil.rmtree(tmp_path / "md")
    (tmp_path / "synced").rename(tmp_path / "md")
    lost = LmdbMetadataStore("m", tmp_path / "md")
    assert await lost.get(f.fileid) is not None  # the remove never reached the store's disk
    await lost.close()

    h2, root2, share2, md2 = await serve(tmp_path, hash_pool)
    try:
        with pytest.raises(E.NotFound):
            await md2.lookup(share2, ROOT, share2.root_id, b"f")
        assert await share2.store.get(f.fileid) is None
        _, listed, _ = await md2.readdir(share2, ROOT, share2.root_id, 0, 100, False)
        names = [e.name for e, _ in listed]
        assert b"f" not in names and b"keep" in names
        assert (await share2.store.usage())[0] == files_before - 1
        d = await share2.store.get(share2.root_id)
        assert (d.mtime, d.ctime) == (wcc.after.mtime_s * 10**9 + wcc.after.mtime_ns,
                                      wcc.after.ctime_s * 10**9 + wcc.after.ctime_ns)
        maps = await share2.store.transact(lambda t: t.object_blocks(cid), write=False)
        assert maps == {}
        assert await share2.store.transact(lambda t: t.block_refcount(digest),
                                           write=False) == 0
        keep = (await md2.lookup(share2, ROOT, share2.root_id, b"keep"))[0]
        assert await share2.payload.read_at(share2.content_id(keep.fileid), 0, 8) == b"keep" * 2
    finally:
        await share2.payload.close()
        await share2.store.close()


@pytest_twisted.ensureDeferred
async def test_restore_unlinked_redoes_only_a_remove_the_store_lost():
    store, md, share, f = await memory_share_with_file()
    await md.commit_write(share, f.fileid, 700)
    files, size = await store.usage()
    d = await store.get(share.root_id)
    when = d.ctime + 5
    await restore_unlinked(store, 12345, pack_unlinked(share.root_id, b"f", when))
    assert (await store.get(f.fileid)) is not None  # the name names another file: kept
    await restore_unlinked(store, f.fileid, pack_unlinked(share.root_id, b"g", when))
    assert (await store.get(f.fileid)) is not None  # no such name: kept
    await restore_unlinked(store, f.fileid, pack_unlinked(share.root_id, b"f", when))
    assert await store.get(f.fileid) is None
    assert await store.transact(lambda t: t.lookup(share.root_id, b"f"), write=False) is None
    assert await store.usage() == (files - 1, size - 700)
    d = await store.get(share.root_id)
    assert (d.mtime, d.ctime) == (when, when)
    g = (await md.create(share, ROOT, share.root_id, b"f", FileType.REG, SetAttrs())).file
    d = await store.get(share.root_id)
    await restore_unlinked(store, f.fileid, pack_unlinked(share.root_id, b"f", when))
    assert (await store.get(g.fileid)) is not None  # created again: a new file id, kept
    assert (await store.get(share.root_id)).ctime == d.ctime


@pytest_twisted.ensureDeferred
async def test_flush_syncs_the_store_when_the_payload_keeps_its_maps_elsewhere(tmp_path,
                                                                             hash_pool):
    from dittofs.payload.blockstores.memory import MemoryBlockStore
    store, other = MemoryMetadataStore("m"), MemoryMetadataStore("o")
    p = CachedPayloadService("p", MemoryBlockStore(), other, hash_pool,
                             wal=W.Wal(tmp_path / "wal"),
                             restore_attrs=redo_hook(other, restore_written))
    await p.start()
    md = MetadataService()
    share = Share("/s", 9, store, p, durability="local")
    share.root_id = await md.ensure_root(share, 0, 0, 0o777)
    f = (await md.create(share, ROOT, share.root_id, b"f", FileType.REG, SetAttrs())).file
    syncs = []
    real = store.sync
    store.sync = lambda: syncs.append(1) or real()
    await share.flush(f.fileid)
    assert syncs == [1]  # replay could not restore into this store: it is synced instead
    assert W.OP_ATTRS not in [r.op for r in p.wal.replay()]
    await p.close()


@pytest_twisted.ensureDeferred
async def test_created_file_survives_losing_the_unsynced_metadata(tmp_path, hash_pool):
    h, root, share, md = await serve(tmp_path, hash_pool)
    data = b"created" * 700
    try:
        await share.store.sync()
        (tmp_path / "synced").mkdir()
        share.store.env.copy(str(tmp_path / "synced"))  # the store as its last fsync left it
        files_before = (await share.store.usage())[0]
        fsyncs, real_finish = [], share.store.writer.finish
        share.store.writer.finish = lambda: fsyncs.append(1) or real_finish()
        st, made = await h.create(C.CreateArgs(DirOpArgs3(root, b"f"), (0, EMPTY_SATTR)), CTX)
        assert st == NfsStat.NFS3_OK
        await h.write(C.WriteArgs(made.obj, 0, len(data), StableHow.UNSTABLE, data), CTX)
        assert (await h.commit(C.CommitArgs(made.obj, 0, 0), CTX))[0] == NfsStat.NFS3_OK
        st, gone = await h.create(C.CreateArgs(DirOpArgs3(root, b"gone"), (0, EMPTY_SATTR)),
                                  CTX)
        await h.write(C.WriteArgs(gone.obj, 0, 5, StableHow.UNSTABLE, b"gone!"), CTX)
        gone_id = (await md.lookup(share, ROOT, share.root_id, b"gone"))[0].fileid
        assert (await h.remove(DirOpArgs3(root, b"gone"), CTX))[0] == NfsStat.NFS3_OK
        assert fsyncs == []  # so the copy is what a power loss now would leave
        f = (await md.lookup(share, ROOT, share.root_id, b"f"))[0]
        d = await share.store.get(share.root_id)
    finally:
        power_off(share)
    shutil.rmtree(tmp_path / "md")
    (tmp_path / "synced").rename(tmp_path / "md")
    lost = LmdbMetadataStore("m", tmp_path / "md")
    assert await lost.get(f.fileid) is None  # the create never reached the store's disk
    await lost.close()

    h2, root2, share2, md2 = await serve(tmp_path, hash_pool)
    try:
        again = (await md2.lookup(share2, ROOT, share2.root_id, b"f"))[0]
        assert (again.fileid, again.size, again.mode) == (f.fileid, len(data), f.mode)
        assert await share2.payload.read_at(share2.content_id(f.fileid), 0, len(data)) == data
        with pytest.raises(E.NotFound):  # created, then removed: both replayed
            await md2.lookup(share2, ROOT, share2.root_id, b"gone")
        assert await share2.store.get(gone_id) is None
        assert (await share2.store.usage())[0] == files_before + 1
        assert (await share2.store.get(share2.root_id)).ctime == d.ctime
        new = (await md2.create(share2, ROOT, share2.root_id, b"new", FileType.REG)).file
        assert new.fileid > gone_id  # replay claimed the ids it re-created or saw
    finally:
        await share2.payload.close()
        await share2.store.close()


@pytest.mark.parametrize("flushed", ["the new file", "the directory"])
@pytest_twisted.ensureDeferred
async def test_smb_creates_and_deletes_wait_for_no_fsync_and_a_flush_makes_them_durable(
        tmp_path, hash_pool, flushed):
    """SMB asks for stable storage only with FLUSH (or WRITE_THROUGH): a create and a
    delete (sync=False, as the SMB handlers pass) write their WAL records without an
    fsync of the WAL or the store; a FLUSH of a file, or of the directory, then makes
    both durable, and replay redoes them once the store has lost them."""
    h, root, share, md = await serve(tmp_path, hash_pool)
    wal = share.payload.wal
    try:
        st, other = await h.create(C.CreateArgs(DirOpArgs3(root, b"other"), (0, EMPTY_SATTR)),
                                   CTX)
        gone = (await md.lookup(share, ROOT, share.root_id, b"other"))[0]
        await share.store.sync()
        (tmp_path / "synced").mkdir()
        share.store.env.copy(str(tmp_path / "synced"))  # the store as its last fsync left it
        fsyncs, real_finish = [], share.store.writer.finish
        share.store.writer.finish = lambda: fsyncs.append(1) or real_finish()
        wal_syncs = wal.syncs
        made = await md.create(share, ROOT, share.root_id, b"smb", FileType.REG,
                               SetAttrs(mode=0o644), durable=False)
        await share.finish_create(share.root_id, b"smb", made, sync=False)
        removed = await md.remove(share, ROOT, share.root_id, b"other", False, durable=False)
        await share.finish_unlink(removed.victim, share.root_id, b"other", sync=False)
        assert wal.syncs == wal_syncs and fsyncs == []  # answered with no fsync at all
        assert [r.op for r in wal.replay()][-2:] == [W.OP_CREATE, W.OP_DELETE]
        if flushed == "the new file":  # what SMB FLUSH does
            await share.flush(made.file.fileid)
        else:
            await share.flush_namespace()
        assert wal.syncs > wal_syncs and fsyncs == []  # the WAL's fsync covers both
    finally:
        power_off(share)
    shutil.rmtree(tmp_path / "md")
    (tmp_path / "synced").rename(tmp_path / "md")
    h2, root2, share2, md2 = await serve(tmp_path, hash_pool)
    try:
        assert (await md2.lookup(share2, ROOT, share2.root_id, b"smb"))[0].fileid == \
            made.file.fileid
        with pytest.raises(E.NotFound):
            await md2.lookup(share2, ROOT, share2.root_id, b"other")
        assert await share2.store.get(gone.fileid) is None
    finally:
        await share2.payload.close()
        await share2.store.close()


@pytest_twisted.ensureDeferred
async def test_replay_leaves_a_create_the_store_kept(tmp_path, hash_pool):
    h, root, share, md = await serve(tmp_path, hash_pool)
    try:
        st, made = await h.create(C.CreateArgs(DirOpArgs3(root, b"f"), (0, EMPTY_SATTR)), CTX)
        f = (await md.lookup(share, ROOT, share.root_id, b"f"))[0]
        await md.rename(share, ROOT, share.root_id, b"f", share.root_id, b"g")  # synced
        files = (await share.store.usage())[0]
        assert W.OP_CREATE in [r.op for r in share.payload.wal.replay()]
    finally:
        power_off(share)
    h2, root2, share2, md2 = await serve(tmp_path, hash_pool)
    try:
        with pytest.raises(E.NotFound):
            await md2.lookup(share2, ROOT, share2.root_id, b"f")
        assert (await md2.lookup(share2, ROOT, share2.root_id, b"g"))[0].fileid == f.fileid
        assert (await share2.store.usage())[0] == files
    finally:
        await share2.payload.close()
        await share2.store.close()


@pytest_twisted.ensureDeferred
async def test_a_store_whose_commits_are_all_durable_logs_no_metadata_in_the_wal(tmp_path,
                                                                               hash_pool):
    from dittofs.payload.blockstores.memory import MemoryBlockStore
    store = MemoryMetadataStore("m")  # lazy_commits False, as PostgreSQL's
    p = CachedPayloadService("p", MemoryBlockStore(), store, hash_pool,
                             wal=W.Wal(tmp_path / "wal"))
    await p.start()
    md = MetadataService()
    share = Share("/s", 9, store, p, durability="local")
    share.root_id = await md.ensure_root(share, 0, 0, 0o777)
    assert not share.logs_creates(FileType.REG)
    f = (await md.create(share, ROOT, share.root_id, b"f", FileType.REG, SetAttrs())).file
    await p.write_at(share.content_id(f.fileid), 0, b"abc", sync=False)
    await share.flush(f.fileid)
    gone = await md.remove(share, ROOT, share.root_id, b"f", False, durable=False)
    await share.finish_unlink(gone.victim, share.root_id, b"f")
    logged = [(r.op, bytes(r.data)) for r in p.wal.replay() if r.op != W.OP_WRITE]
    assert logged == [(W.OP_DELETE, b"")]  # no attributes, no unlink: the store keeps them
    await p.close()


@pytest.mark.parametrize("failing", ["one batch", "every batch for a while"])
@pytest_twisted.ensureDeferred
async def test_an_unstable_write_whose_wal_record_fails_is_reported_by_commit_once(
        tmp_path, hash_pool, failing):
    """An UNSTABLE WRITE is answered before its WAL record is written; if the record then
    fails, the COMMIT that would promise the bytes fails instead, once: also when that
    COMMIT's own record fails with it (in the same batch, or while the disk stays bad),
    the next COMMIT, its record written, succeeds.  A FILE_SYNC WRITE still waits for its
    record and reports the failure itself."""
    h, root, share, md = await serve(tmp_path, hash_pool)
    try:
        st, made = await h.create(C.CreateArgs(DirOpArgs3(root, b"f"), (0, EMPTY_SATTR)), CTX)
        assert st == NfsStat.NFS3_OK
        if failing == "one batch":
            gate_wal_writer(share.payload.wal, fail=True).set()
        else:
            healed = failing_wal_writer(share.payload.wal)
        data = b"u" * (1 << 20)
        st, wrote = await h.write(
            C.WriteArgs(made.obj, 0, len(data), StableHow.UNSTABLE, data), CTX)
        assert st == NfsStat.NFS3_OK and wrote.count == len(data)
        st, _ = await h.commit(C.CommitArgs(made.obj, 0, 0), CTX)
        assert st == NfsStat.NFS3ERR_IO
        if failing != "one batch":
            healed.set()
        st, _ = await h.commit(C.CommitArgs(made.obj, 0, 0), CTX)
        assert st == NfsStat.NFS3_OK
        st, read = await h.read(C.ReadArgs(made.obj, 0, len(data)), CTX)
        assert st == NfsStat.NFS3_OK and read.data == data
        gate_wal_writer(share.payload.wal, fail=True).set()
        st, _ = await h.write(C.WriteArgs(made.obj, 0, len(data), StableHow.FILE_SYNC, data),
                              CTX)
        assert st == NfsStat.NFS3ERR_IO
    finally:
        await share.payload.close()
        await share.store.close()
