"""Metadata changes as the payload's WAL records them, and how replay puts them back.

In the local tier some metadata changes are committed to the store without an fsync and
made durable by a synced WAL record instead (one fsync for content and metadata, or a
WAL fsync over laid-down zeros instead of the store's): the attributes unstable writes
changed (COMMIT, SMB FLUSH), the creation of a regular file, the unlink that freed one.
Each record is packed here, opaque to the payload service, and handed back at replay to
the matching ``restore_*``, which redoes the change only if the store lost it.  A WAL
segment is trimmed only after a metadata sync, which covers the changes committed
before its records.
"""

from __future__ import annotations

import struct
from typing import Any

from dittofs.metadata.records import pack_record, unpack_record
from dittofs.metadata.service import MetadataService
from dittofs.metadata.types import FileRecord, FileType

#: What commit_write changes, as a payload flush logs it: size, mtime, ctime, mode.
_WRITTEN = struct.Struct(">QqqI")


def pack_written(rec: FileRecord) -> bytes:
    """The attributes unstable writes change, for the WAL (see restore_written)."""
    return _WRITTEN.pack(rec.size, rec.mtime, rec.ctime, rec.mode)


async def restore_written(store: Any, fileid: int, attrs: bytes) -> None:
    """WAL replay: put back attributes logged by a flush unless the file changed since
    (a later ctime: a truncate, chmod or write the store kept).  Not synced: the WAL
    keeps the record until a metadata sync covers this too."""
    size, mtime, ctime, mode = _WRITTEN.unpack(attrs)

    def fn(txn: Any) -> None:
        rec = txn.get(fileid)
        if rec is None or rec.ftype != FileType.REG or rec.ctime >= ctime:
            return
        txn.put(rec._replace(size=size, mtime=mtime, ctime=ctime, mode=mode))
        if size != rec.size:
            txn.add_usage(0, size - rec.size)
    await store.transact(fn, durable=False)


#: An unlink as a payload delete logs it: the directory, the time; the name follows.
_UNLINKED = struct.Struct(">Qq")


def pack_unlinked(dir_id: int, name: bytes, when: int) -> bytes:
    """The namespace change of a remove that freed a file, for the WAL (restore_unlinked)."""
    return _UNLINKED.pack(dir_id, when) + name


async def restore_unlinked(store: Any, fileid: int, unlinked: bytes) -> None:
    """WAL replay: redo the remove of file ``fileid`` that ``unlinked`` describes if the
    store lost it, i.e. if the name still names that file (file ids are never reused, so
    a name that is gone or names another file means the store kept the remove, or kept
    it and later changes).  The directory's times go forward only.  Not synced: the WAL
    keeps the record until a metadata sync covers this too."""
    dir_id, when = _UNLINKED.unpack_from(unlinked)
    name = bytes(unlinked[_UNLINKED.size:])

    def fn(txn: Any) -> None:
        if txn.lookup(dir_id, name) != fileid:
            return
        d, victim = txn.get(dir_id), txn.get(fileid)
        if d is None or victim is None:
            return
        txn.remove_entry(dir_id, name)
        if d.ctime < when:
            txn.put(d._replace(mtime=when, ctime=when))
        MetadataService._drop_link(txn, victim, when)
    await store.transact(fn, durable=False)


#: A creation as a payload logs it: the directory, the directory's ctime after, the
#: name's length; the name and the new file's record follow.
_CREATED = struct.Struct(">QqH")


def pack_created(dir_id: int, name: bytes, made: Any) -> bytes:
    """The namespace change of a create (a Created), for the WAL (restore_created)."""
    return _CREATED.pack(dir_id, made.dir_post.ctime, len(name)) + name + pack_record(made.file)


async def restore_created(store: Any, fileid: int, created: bytes) -> None:
    """WAL replay: create file ``fileid`` again as ``created`` describes if the store lost
    it, i.e. if the store never issued its id (claim_fileid): a store that issued it kept
    the create, and a file missing then was removed later.  The directory's times go
    forward only.  Not synced: the WAL keeps the record until a metadata sync covers it."""
    dir_id, dir_ctime, n = _CREATED.unpack_from(created)
    name = bytes(created[_CREATED.size:_CREATED.size + n])
    rec = unpack_record(bytes(created[_CREATED.size + n:]))

    def fn(txn: Any) -> None:
        if rec.fileid != fileid or not txn.claim_fileid(fileid):
            return
        d = txn.get(dir_id)
        if d is None or d.ftype != FileType.DIR or txn.lookup(dir_id, name) is not None:
            return
        txn.put(rec)
        txn.add_entry(dir_id, name, fileid)
        if d.ctime < dir_ctime:
            txn.put(d._replace(mtime=dir_ctime, ctime=dir_ctime))
        txn.add_usage(1, rec.size)
    await store.transact(fn, durable=False)
