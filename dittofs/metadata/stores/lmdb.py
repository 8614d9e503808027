"""LmdbMetadataStore: the embedded on-disk store (the role BadgerDB plays in the original).

Key schema (all integers big-endian, so keys sort numerically):
  files    fileid(8)                 -> records.pack_record(FileRecord)
  entries  dir(8) + name             -> cookie(8) + fileid(8)
  cookies  dir(8) + cookie(8)        -> name              (listing in cookie order)
  meta     b"next_fileid" | b"next_cookie" | b"nfiles" | b"nbytes" -> 8 bytes
           b"root:" + share name     -> fileid(8)
  blocks   sha256 digest(32)         -> refcount(8) + size(8)
  objects  content id + NUL + index(8) -> digest

Reads run on the calling (reactor) thread in a read transaction: an LMDB get costs
about a microsecond, far less than a thread hop.  Writes go to one writer thread that
group-commits: every queued function runs in its own nested transaction inside one
outer transaction, so a failing function is rolled back alone and one fsync covers
the whole batch.  LMDB is copy-on-write, so a kill -9 at any moment leaves the last
committed state intact.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from dittofs.metadata import errors as E
from dittofs.metadata.interfaces import IMetadataStore, ITransaction
from dittofs.metadata.records import pack_record, unpack_record
from dittofs.metadata.types import DirEntry, FileRecord
from dittofs.threads import BatchWorker, InlineSync

_Q = struct.Struct(">Q")
_q = struct.Struct(">q")
_QQ = struct.Struct(">QQ")
FIRST_COOKIE = 3
DEFAULT_MAP_SIZE = 64 << 30


@implementer(ITransaction)
class _LmdbTransaction:
    __slots__ = ("s", "t", "write")

    def __init__(self, store: "LmdbMetadataStore", txn: Any, write: bool) -> None:
        self.s = store
        self.t = txn
        self.write = write

    def _w(self) -> None:
        if not self.write:
            raise RuntimeError("write inside a read-only transaction")

    def get(self, fileid: int) -> FileRecord | None:
        raw = self.t.get(_Q.pack(fileid), db=self.s.files)
        return None if raw is None else unpack_record(raw)

    def put(self, record: FileRecord) -> None:
        self._w()
        self.t.put(_Q.pack(record.fileid), pack_record(record), db=self.s.files)

    def delete(self, fileid: int) -> None:
        self._w()
        self.t.delete(_Q.pack(fileid), db=self.s.files)

    def _counter(self, key: bytes, delta: int, fmt: struct.Struct = _Q) -> int:
        raw = self.t.get(key, db=self.s.meta)
        value = (fmt.unpack(raw)[0] if raw else 0) + delta
        self.t.put(key, fmt.pack(value), db=self.s.meta)
        return value

    def new_fileid(self) -> int:
        self._w()
        return self._counter(b"next_fileid", 1)

    def claim_fileid(self, fileid: int) -> bool:
        self._w()
        raw = self.t.get(b"next_fileid", db=self.s.meta)
        if (_Q.unpack(raw)[0] if raw else 0) >= fileid:
            return False
        self.t.put(b"next_fileid", _Q.pack(fileid), db=self.s.meta)
        return True

    def lookup(self, dir_id: int, name: bytes) -> int | None:
        raw = self.t.get(_Q.pack(dir_id) + name, db=self.s.entries)
        return None if raw is None else _QQ.unpack(raw)[1]

    def add_entry(self, dir_id: int, name: bytes, fileid: int) -> int:
        self._w()
        cookie = self._counter(b"next_cookie", 1) + FIRST_COOKIE
        d = _Q.pack(dir_id)
        self.t.put(d + name, _QQ.pack(cookie, fileid), db=self.s.entries)
        self.t.put(d + _Q.pack(cookie), name, db=self.s.cookies)
        return cookie

    def remove_entry(self, dir_id: int, name: bytes) -> None:
        self._w()
        d = _Q.pack(dir_id)
        raw = self.t.pop(d + name, db=self.s.entries)
        if raw is None:
            raise E.NotFound(repr(name))
        self.t.delete(d + raw[:8], db=self.s.cookies)

    def list_entries(self, dir_id: int, after_cookie: int, limit: int,
                     plus: bool = False) -> tuple[list, bool]:
        d = _Q.pack(dir_id)
        cur = self.t.cursor(db=self.s.cookies)
        out: list = []
        if not cur.set_range(d + _Q.pack(after_cookie + 1)):
            return out, True
        entries, files = self.s.entries, self.s.files
        for key, name in cur:
            if key[:8] != d:
                return out, True
            if len(out) >= limit:
                return out, False
            cookie = _Q.unpack_from(key, 8)[0]
            fileid = _QQ.unpack(self.t.get(d + name, db=entries))[1]
            rec = None
            if plus:
                raw = self.t.get(_Q.pack(fileid), db=files)
                rec = None if raw is None else unpack_record(raw)
            out.append((DirEntry(cookie, bytes(name), fileid), rec))
        return out, True

    def has_entries(self, dir_id: int) -> bool:
        d = _Q.pack(dir_id)
        cur = self.t.cursor(db=self.s.cookies)
        return cur.set_range(d) and cur.key()[:8] == d

    def get_root(self, share: str) -> int | None:
        raw = self.t.get(b"root:" + share.encode(), db=self.s.meta)
        return None if raw is None else _Q.unpack(raw)[0]

    def set_root(self, share: str, fileid: int) -> None:
        self._w()
        self.t.put(b"root:" + share.encode(), _Q.pack(fileid), db=self.s.meta)

    def add_usage(self, files: int, nbytes: int) -> None:
        self._w()
        if files:
            self._counter(b"nfiles", files, _q)
        if nbytes:
            self._counter(b"nbytes", nbytes, _q)

    def block_refcount(self, digest: bytes) -> int:
        raw = self.t.get(digest, db=self.s.blocks)
        return 0 if raw is None else _QQ.unpack(raw)[0]

    def block_incref(self, digest: bytes, size: int) -> int:
        self._w()
        raw = self.t.get(digest, db=self.s.blocks)
        count, size = (1, size) if raw is None else (_QQ.unpack(raw)[0] + 1, _QQ.unpack(raw)[1])
        self.t.put(digest, _QQ.pack(count, size), db=self.s.blocks)
        return count

    def block_decref(self, digest: bytes) -> int:
        self._w()
        raw = self.t.get(digest, db=self.s.blocks)
        if raw is None:
            return 0
        count, size = _QQ.unpack(raw)
        if count <= 1:
            self.t.delete(digest, db=self.s.blocks)
            return 0
        self.t.put(digest, _QQ.pack(count - 1, size), db=self.s.blocks)
        return count - 1

    def block_totals(self) -> tuple[int, int]:
        n = total = 0
        for _, raw in self.t.cursor(db=self.s.blocks):
            n += 1
            total += _QQ.unpack(raw)[1]
        return n, total

    def object_blocks(self, content_id: str) -> dict[int, bytes]:
        prefix = content_id.encode() + b"\0"
        cur = self.t.cursor(db=self.s.objects)
        out: dict[int, bytes] = {}
        if cur.set_range(prefix):
            for key, digest in cur:
                if not key.startswith(prefix):
                    break
                out[_Q.unpack_from(key, len(prefix))[0]] = bytes(digest)
        return out

    def set_object_block(self, content_id: str, index: int, digest: bytes | None) -> None:
        self._w()
        key = content_id.encode() + b"\0" + _Q.pack(index)
        if digest is None:
            self.t.delete(key, db=self.s.objects)
        else:
            self.t.put(key, digest, db=self.s.objects)


def _store_error(e: Exception, what: str = "") -> E.MetadataError:
    """A full map or disk is NoSpace (NFS3ERR_NOSPC, STATUS_DISK_FULL); the rest StoreIOError."""
    text = f"{what}: {e}" if what else str(e)
    if isinstance(e, lmdb.MapFullError) or "No space left" in str(e):
        return E.NoSpace(text)
    return E.StoreIOError(text)


@implementer(IMetadataStore)
class LmdbMetadataStore:
    """Metadata in one LMDB environment under ``path``."""

    lazy_commits = True  # a non-durable commit is written, not synced (see _sync_env)

    def __init__(self, name: str, path: str | os.PathLike, map_size: int = DEFAULT_MAP_SIZE,
                 reactor: Any = None, inline_sync: Callable[[], bool] | None = None) -> None:
        """``inline_sync()``: True when nothing waits for the calling (reactor) thread, so
        that a durable commit and its fsync may be done there and then (see
        threads.InlineSync)."""
        self.name = name
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # Commits do not fsync by themselves: the writer thread syncs once per batch
            # that holds a durable transaction.  Without WRITEMAP, LMDB keeps atomicity
            # and consistency for the others; a process crash loses nothing.
            self.env = lmdb.open(str(self.path), map_size=map_size, max_dbs=8, sync=False,
                                 metasync=False, max_readers=256, readahead=False)
        except (OSError, lmdb.Error) as e:
            raise E.StoreIOError(f"metadata store {name!r}: cannot open {self.path}: {e}") \
                from None
        env = self.env
        self.files = env.open_db(b"files")
        self.entries = env.open_db(b"entries")
        self.cookies = env.open_db(b"cookies")
        self.meta = env.open_db(b"meta")
        self.blocks = env.open_db(b"blocks")
        self.objects = env.open_db(b"objects")
        # A non-durable write (no sync) is a page-cache write: done inline when idle, and
        # a durable one too when nothing else waits for the reactor (see _here).  In the
        # writer, a durable batch's fsync runs after its commit (finish): non-durable
        # writes of the batch are answered before it, and new ones go on inline during it.
        self.sync_here = InlineSync(inline_sync)
        self.writer = BatchWorker(f"lmdb-{name}", self._write_batch, reactor,
                                  inline=self._here, finish=self._sync_env,
                                  needs_finish=lambda item: item[1])
        self._closed = False
        # Non-durable writes submitted, and how many of them the last sync covered: a sync
        # with nothing new to cover (an idle server's background round) costs nothing.
        self._lazy_writes = 0
        self._lazy_synced = 0

    def transact(self, fn: Callable[[Any], Any], write: bool = True,
                 durable: bool = True) -> defer.Deferred:
        if self._closed:
            return defer.fail(E.StoreIOError(f"metadata store {self.name!r} is closed"))
        if not write:
            try:
                with self.env.begin() as txn:
                    return defer.succeed(fn(_LmdbTransaction(self, txn, False)))
            except lmdb.Error as e:
                return defer.fail(_store_error(e))
            except BaseException:
                return defer.fail()
        return self._submit(fn, durable)

    def sync(self) -> defer.Deferred:
        if self._lazy_writes == self._lazy_synced:
            return defer.succeed(None)
        # Queued behind every write submitted so far, so the one fsync covers them all.
        return self._submit(None, True)

    def _submit(self, fn: Callable[[Any], Any] | None, durable: bool) -> defer.Deferred:
        if not durable:
            self._lazy_writes += 1
            return self.writer.submit((fn, durable))
        # A durable commit's fsync also covers every write submitted before it.
        mark = self._lazy_writes

        def synced(result: Any) -> Any:
            self._lazy_synced = max(self._lazy_synced, mark)
            return result
        return self.writer.submit((fn, durable)).addCallback(synced)

    def _write_batch(self, batch: list) -> list:
        """Writer thread: each function in a nested transaction of one outer transaction,
        so a failing one is rolled back alone (the sync, if any asked for durability, is
        _sync_env, run by the writer after)."""
        results: list[tuple[bool, Any]] = []
        try:
            with self.env.begin(write=True) as outer:
                for fn, _ in batch:
                    if fn is None:
                        results.append((True, None))
                        continue
                    child = self.env.begin(write=True, parent=outer)
                    try:
                        r = fn(_LmdbTransaction(self, child, True))
                        child.commit()
                        results.append((True, r))
                    except lmdb.Error as e:
                        child.abort()
                        results.append((False, Failure(_store_error(e))))
                    except BaseException:
                        child.abort()
                        results.append((False, Failure()))
        except lmdb.Error as e:
            fail = Failure(_store_error(e, "commit failed"))
            results = [(False, fail)] * len(batch)
        return results

    def _here(self, item: tuple) -> bool:
        """Whether the writer's idle caller (the reactor) does this write itself: a
        non-durable one always (a page-cache write); a durable one, commit and fsync, when
        self.sync_here allows it."""
        fn, durable = item
        if not durable:
            return fn is not None
        return self.sync_here.allowed()

    def _sync_env(self) -> None:
        try:
            self.sync_here.timed(self.env.sync, True)
        except lmdb.Error as e:
            raise _store_error(e, "sync failed") from None

    def get(self, fileid: int) -> defer.Deferred:
        try:
            with self.env.begin() as txn:
                raw = txn.get(_Q.pack(fileid), db=self.files)
        except lmdb.Error as e:
            return defer.fail(_store_error(e))
        return defer.succeed(None if raw is None else unpack_record(raw))

    def usage(self) -> defer.Deferred:
        def fn(txn: _LmdbTransaction) -> tuple[int, int]:
            f = txn.t.get(b"nfiles", db=self.meta)
            b = txn.t.get(b"nbytes", db=self.meta)
            return (_q.unpack(f)[0] if f else 0, _q.unpack(b)[0] if b else 0)
        return self.transact(fn, write=False)

    def close(self) -> defer.Deferred:
        if self._closed:
            return defer.succeed(None)
        self._closed = True
        self.writer.stop()  # joins the writer once its queue is empty: a few ms at most
        self.env.sync(True)
        self.env.close()
        return defer.succeed(None)
