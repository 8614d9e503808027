"""MetadataService over the memory store: POSIX rules and all-or-nothing transactions."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from zope.interface.verify import verifyObject

from dittofs.metadata import errors as E
from dittofs.metadata.interfaces import IMetadataStore, ITransaction
from dittofs.metadata.service import MetadataService
from dittofs.metadata.stores.memory import MemoryMetadataStore
from dittofs.metadata.types import FileType, Identity, SetAttrs
from dittofs.runtime.shares import Share

ALICE = Identity(1000, 1000, ())
BOB = Identity(2000, 2000, ())


def run(coro):
    d = defer.ensureDeferred(coro)
    results = []
    d.addBoth(results.append)
    assert results, "memory-backed operations complete synchronously"
    r = results[0]
    if hasattr(r, "raiseException"):
        r.raiseException()
    return r


@pytest.fixture()
def env():
    store = MemoryMetadataStore("m")
    share = Share("/s", 1, store, None)
    md = MetadataService()
    share.root_id = run(md.ensure_root(share, 0, 0, 0o777))
    return md, share


def test_interfaces():
    store = MemoryMetadataStore("m")
    assert verifyObject(IMetadataStore, store)
    store.transact(lambda txn: verifyObject(ITransaction, txn))


def test_ensure_root_is_idempotent(env):
    md, share = env
    assert run(md.ensure_root(share, 0, 0, 0o777)) == share.root_id


def test_failed_transaction_changes_nothing(env):
    md, share = env
    store = share.store
    run(md.create(share, ALICE, share.root_id, b"a", FileType.REG))
    before = dict(store._files), {k: dict(v.entries) for k, v in store._dirs.items()}

    def partial(txn):
        fid = txn.new_fileid()
        txn.add_entry(share.root_id, b"half", fid)
        txn.remove_entry(share.root_id, b"a")
        txn.add_usage(5, 5)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run(_await(store.transact(partial)))
    after = dict(store._files), {k: dict(v.entries) for k, v in store._dirs.items()}
    assert after == before
    assert run(_await(store.usage())) == (2, 0)


async def _await(d):
    return await d


def test_rename_replacing_target_frees_it(env):
    md, share = env
    a = run(md.create(share, ALICE, share.root_id, b"a", FileType.REG)).file
    b = run(md.create(share, ALICE, share.root_id, b"b", FileType.REG)).file
    r = run(md.rename(share, ALICE, share.root_id, b"a", share.root_id, b"b"))
    assert r.replaced is not None and r.replaced.fileid == b.fileid
    child, _ = run(md.lookup(share, ALICE, share.root_id, b"b"))
    assert child.fileid == a.fileid
    with pytest.raises(E.Stale):
        run(md.getattr(share, b.fileid))


def test_permissions_and_owner_override(env):
    md, share = env
    f = run(md.create(share, ALICE, share.root_id, b"ro", FileType.REG,
                      SetAttrs(mode=0o444))).file
    # The owner may still write a read-only file it created (as nfsd allows for cp -p, tar).
    run(md.prepare_write(share, ALICE, f.fileid))
    with pytest.raises(E.AccessDenied):
        run(md.prepare_write(share, BOB, f.fileid))
    run(md.prepare_read(share, BOB, f.fileid))
    with pytest.raises(E.NotPermitted):
        run(md.setattr(share, BOB, f.fileid, SetAttrs(mode=0o777)))


def test_setgid_directory_inherits_group(env):
    md, share = env
    d = run(md.create(share, ALICE, share.root_id, b"g", FileType.DIR,
                      SetAttrs(mode=0o2775, gid=1000))).file
    run(md.setattr(share, Identity(0, 0, ()), d.fileid, SetAttrs(gid=77)))
    f = run(md.create(share, ALICE, d.fileid, b"f", FileType.REG)).file
    sub = run(md.create(share, ALICE, d.fileid, b"sub", FileType.DIR)).file
    assert f.gid == 77 and sub.gid == 77 and sub.mode & 0o2000


def test_commit_write_grows_and_usage(env):
    md, share = env
    f = run(md.create(share, ALICE, share.root_id, b"w", FileType.REG)).file
    pre, post = run(md.commit_write(share, f.fileid, 100))
    assert pre.size == 0 and post.size == 100
    pre, post = run(md.commit_write(share, f.fileid, 50))
    assert post.size == 100
    assert run(_await(share.store.usage())) == (2, 100)
    run(md.remove(share, ALICE, share.root_id, b"w", rmdir=False))
    assert run(_await(share.store.usage())) == (1, 0)


def test_read_only_share(env):
    md, share = env
    share.read_only = True
    with pytest.raises(E.ReadOnly):
        run(md.create(share, ALICE, share.root_id, b"x", FileType.REG))
