"""The in-memory metadata store: dicts under one lock, the reference backend.

Transactions write straight into the dicts and keep an undo log; a function
that raises is rolled back before the error is passed on.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from dittofs.metadata.interfaces import IMetadataStore, ITransaction
from dittofs.metadata.types import DirEntry, FileRecord

FIRST_COOKIE = 3  # 1 and 2 are "." and ".."


class _Dir:
    __slots__ = ("entries", "cookies", "names", "next_cookie")

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[int, int]] = {}
        self.cookies: list[int] = []
        self.names: dict[int, bytes] = {}
        self.next_cookie = FIRST_COOKIE


@implementer(ITransaction)
class _MemoryTransaction:
    __slots__ = ("s", "undo")

    def __init__(self, store: "MemoryMetadataStore") -> None:
        self.s = store
        self.undo: list[Callable[[], None]] = []

    def get(self, fileid: int) -> FileRecord | None:
        return self.s._files.get(fileid)

    def put(self, record: FileRecord) -> None:
        files = self.s._files
        old = files.get(record.fileid)
        fid = record.fileid
        if old is None:
            self.undo.append(lambda: files.pop(fid, None))
        else:
            self.undo.append(lambda: files.__setitem__(fid, old))
        files[fid] = record

    def delete(self, fileid: int) -> None:
        files = self.s._files
        old = files.pop(fileid, None)
        d = self.s._dirs.pop(fileid, None)
        if old is not None:
            self.undo.append(lambda: files.__setitem__(fileid, old))
        if d is not None:
            self.undo.append(lambda: self.s._dirs.__setitem__(fileid, d))

    def new_fileid(self) -> int:
        self.s._last_id += 1
        return self.s._last_id

    def claim_fileid(self, fileid: int) -> bool:
        if fileid <= self.s._last_id:
            return False
        last = self.s._last_id
        self.s._last_id = fileid
        self.undo.append(lambda: setattr(self.s, "_last_id", last))
        return True

    def _dir(self, dir_id: int) -> _Dir:
        d = self.s._dirs.get(dir_id)
        if d is None:
            d = self.s._dirs[dir_id] = _Dir()
        return d

    def lookup(self, dir_id: int, name: bytes) -> int | None:
        d = self.s._dirs.get(dir_id)
        if d is None:
            return None
        hit = d.entries.get(name)
        return None if hit is None else hit[1]

    def add_entry(self, dir_id: int, name: bytes, fileid: int) -> int:
        d = self._dir(dir_id)
        cookie = d.next_cookie
        d.next_cookie += 1
        self._insert(d, name, cookie, fileid)
        self.undo.append(lambda: self._erase(d, name))
        return cookie

    @staticmethod
    def _insert(d: _Dir, name: bytes, cookie: int, fileid: int) -> None:
        d.entries[name] = (cookie, fileid)
        d.names[cookie] = name
        if not d.cookies or d.cookies[-1] < cookie:
            d.cookies.append(cookie)
        else:
            bisect.insort(d.cookies, cookie)

    @staticmethod
    def _erase(d: _Dir, name: bytes) -> tuple[int, int]:
        cookie, fileid = d.entries.pop(name)
        del d.names[cookie]
        i = bisect.bisect_left(d.cookies, cookie)
        del d.cookies[i]
        return cookie, fileid

    def remove_entry(self, dir_id: int, name: bytes) -> None:
        d = self.s._dirs[dir_id]
        cookie, fileid = self._erase(d, name)
        self.undo.append(lambda: self._insert(d, name, cookie, fileid))

    def list_entries(self, dir_id: int, after_cookie: int, limit: int,
                     plus: bool = False) -> tuple[list, bool]:
        d = self.s._dirs.get(dir_id)
        if d is None:
            return [], True
        i = bisect.bisect_right(d.cookies, after_cookie)
        chunk = d.cookies[i:i + limit]
        names, entries, files = d.names, d.entries, self.s._files
        out = []
        for c in chunk:
            name = names[c]
            fid = entries[name][1]
            out.append((DirEntry(c, name, fid), files.get(fid) if plus else None))
        return out, i + limit >= len(d.cookies)

    def has_entries(self, dir_id: int) -> bool:
        d = self.s._dirs.get(dir_id)
        return bool(d and d.entries)

    def get_root(self, share: str) -> int | None:
        return self.s._roots.get(share)

    def set_root(self, share: str, fileid: int) -> None:
        roots = self.s._roots
        old = roots.get(share)
        roots[share] = fileid
        self.undo.append(lambda: roots.pop(share) if old is None else roots.__setitem__(share, old))

    def add_usage(self, files: int, nbytes: int) -> None:
        s = self.s
        s._nfiles += files
        s._nbytes += nbytes

        def back() -> None:
            s._nfiles -= files
            s._nbytes -= nbytes
        self.undo.append(back)

    def block_refcount(self, digest: bytes) -> int:
        hit = self.s._blocks.get(digest)
        return 0 if hit is None else hit[0]

    def block_incref(self, digest: bytes, size: int) -> int:
        blocks = self.s._blocks
        old = blocks.get(digest)
        blocks[digest] = (1, size) if old is None else (old[0] + 1, old[1])
        self.undo.append(lambda: blocks.pop(digest) if old is None
                         else blocks.__setitem__(digest, old))
        return blocks[digest][0]

    def block_decref(self, digest: bytes) -> int:
        blocks = self.s._blocks
        old = blocks.get(digest)
        if old is None:
            return 0
        self.undo.append(lambda: blocks.__setitem__(digest, old))
        if old[0] <= 1:
            del blocks[digest]
            return 0
        blocks[digest] = (old[0] - 1, old[1])
        return old[0] - 1

    def block_totals(self) -> tuple[int, int]:
        blocks = self.s._blocks
        return len(blocks), sum(size for _, size in blocks.values())

    def object_blocks(self, content_id: str) -> dict[int, bytes]:
        return dict(self.s._objects.get(content_id, {}))

    def set_object_block(self, content_id: str, index: int, digest: bytes | None) -> None:
        objects = self.s._objects
        had = content_id in objects
        obj = objects.setdefault(content_id, {})
        old = obj.get(index)

        def back() -> None:
            if old is None:
                obj.pop(index, None)
            else:
                obj[index] = old
            if not had and not obj:
                objects.pop(content_id, None)
        self.undo.append(back)
        if digest is None:
            obj.pop(index, None)
            if not obj:
                del objects[content_id]
        else:
            obj[index] = digest


@implementer(IMetadataStore)
class MemoryMetadataStore:
    """Everything in dicts; lost on restart."""

    lazy_commits = False  # nothing survives a restart, so nothing is replayed into it

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._files: dict[int, FileRecord] = {}
        self._dirs: dict[int, _Dir] = {}
        self._roots: dict[str, int] = {}
        self._last_id = 0  # the last file id issued
        self._lock = threading.RLock()
        self._nfiles = 0
        self._nbytes = 0
        self._blocks: dict[bytes, tuple[int, int]] = {}
        self._objects: dict[str, dict[int, bytes]] = {}

    def transact(self, fn: Callable[[Any], Any], write: bool = True,
                 durable: bool = True) -> defer.Deferred:
        with self._lock:
            txn = _MemoryTransaction(self)
            try:
                result = fn(txn)
            except BaseException:
                for undo in reversed(txn.undo):
                    undo()
                return defer.fail()
        return defer.succeed(result)

    def get(self, fileid: int) -> defer.Deferred:
        return defer.succeed(self._files.get(fileid))

    def sync(self) -> defer.Deferred:
        return defer.succeed(None)

    def usage(self) -> defer.Deferred:
        return defer.succeed((self._nfiles, self._nbytes))

    def close(self) -> defer.Deferred:
        return defer.succeed(None)
