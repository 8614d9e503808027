"""MetadataService: POSIX file-system semantics over any IMetadataStore.

Every operation checks permissions for an Identity, then changes records inside
one store transaction, so a failure part-way leaves nothing changed.  Results
carry the pre-operation attributes (``WccAttr``) protocols need for caching.
"""

from __future__ import annotations

import stat
import time
from typing import Any, NamedTuple, Protocol

from twisted.logger import Logger

from dittofs.metadata import errors as E
from dittofs.metadata.permissions import R, W, X, allowed, granted, in_group, sticky_allows
from dittofs.metadata.types import (
    NAME_MAX,
    DirEntry,
    FileRecord,
    FileType,
    FsStats,
    Identity,
    SetAttrs,
    SetTime,
    WccAttr,
)

MAX_FILE_SIZE = 2**63 - 1
MAX_LINKS = 65000
DEFAULT_MODES = {FileType.REG: 0o644, FileType.DIR: 0o755, FileType.LNK: 0o777}
#: What FSSTAT reports for capacity until stores report real quotas.
CAPACITY_BYTES = 1 << 50
CAPACITY_FILES = 1 << 40


class ShareLike(Protocol):
    name: str
    store: Any
    read_only: bool
    synchronous: bool  # False (writeback tier): changes are synced in the background


class Unlinked(NamedTuple):
    """Result of removing a name: the directory before/after and the file after."""

    dir_pre: WccAttr
    dir_post: FileRecord
    victim: FileRecord
    freed: bool  # the last link went: its content can be deleted


class Renamed(NamedTuple):
    from_pre: WccAttr
    from_post: FileRecord
    to_pre: WccAttr
    to_post: FileRecord
    replaced: FileRecord | None  # a target that lost its last link


class Created(NamedTuple):
    dir_pre: WccAttr
    dir_post: FileRecord
    file: FileRecord
    truncated_from: int | None = None  # UNCHECKED create of an existing file shrank it
    existed: bool = False  # an existing file was opened (retransmission or UNCHECKED)


def _now() -> int:
    return time.time_ns()


def check_name(name: bytes) -> None:
    """Reject names no POSIX file system accepts."""
    if not name:
        raise E.InvalidArgument("empty name")
    if len(name) > NAME_MAX:
        raise E.NameTooLong(f"name of {len(name)} bytes")
    if b"/" in name or b"\0" in name:
        raise E.InvalidArgument("name contains '/' or NUL")


def check_new_name(name: bytes) -> None:
    """A name for a new entry: valid, and not "." or ".." (which always exist)."""
    if name in (b".", b".."):
        raise E.Exists(repr(name))
    check_name(name)


def _need(ident: Identity, rec: FileRecord, want: int) -> None:
    if not allowed(ident, rec, want):
        raise E.AccessDenied(f"fileid {rec.fileid}")


def _get(txn: Any, fileid: int) -> FileRecord:
    rec = txn.get(fileid)
    if rec is None:
        raise E.Stale(f"fileid {fileid}")
    return rec


def _entry_to_unlink(txn: Any, ident: Identity, d: FileRecord, name: bytes) -> FileRecord:
    """The file ``name`` names in directory ``d``, if ``ident`` may unlink it (sticky rule)."""
    fid = txn.lookup(d.fileid, name)
    if fid is None:
        raise E.NotFound(repr(name))
    rec = _get(txn, fid)
    if not sticky_allows(ident, d, rec):
        raise E.AccessDenied(f"sticky directory {d.fileid}")
    return rec


def _get_dir(txn: Any, fileid: int) -> FileRecord:
    rec = _get(txn, fileid)
    if rec.ftype != FileType.DIR:
        raise E.NotDirectory(f"fileid {fileid}")
    return rec

log = Logger(namespace="dittofs.metadata")

#: Name change kinds passed to listeners (the values of FILE_ACTION_* in MS-FSCC 2.7.1).
ADDED, REMOVED, RENAMED_OLD, RENAMED_NEW = 1, 2, 4, 5


class MetadataService:
    """File-system operations for protocol handlers; stores are reached only through here.

    ``listeners`` are called as ``fn(share, dir_id, action, name)`` after a name is added
    to or removed from a directory, whichever protocol made the change (SMB change
    notify uses this).
    """

    def __init__(self) -> None:
        self.listeners: list = []

    def _changed(self, share: ShareLike, dir_id: int, action: int, name: bytes) -> None:
        for fn in self.listeners:
            try:
                fn(share, dir_id, action, name)
            except Exception:
                log.failure("metadata listener failed")

    # -- reads ---------------------------------------------------------------

    async def getattr(self, share: ShareLike, fileid: int) -> FileRecord:
        rec = await share.store.get(fileid)
        if rec is None:
            raise E.Stale(f"fileid {fileid}")
        return rec

    async def lookup(self, share: ShareLike, ident: Identity, dir_id: int,
                     name: bytes) -> tuple[FileRecord, FileRecord]:
        """Return (child, directory)."""
        def fn(txn: Any) -> tuple[FileRecord, FileRecord]:
            d = _get_dir(txn, dir_id)
            _need(ident, d, X)
            if name == b".":
                return d, d
            if name == b"..":
                return _get(txn, d.parent), d
            check_name(name)
            child = txn.lookup(dir_id, name)
            if child is None:
                raise E.NotFound(repr(name))
            return _get(txn, child), d
        return await share.store.transact(fn, write=False)

    async def walk(self, share: ShareLike, ident: Identity, dir_id: int,
                   names: list[bytes]) -> tuple[int, FileRecord | None]:
        """Follow a path of ``names`` (not "." or "..") down from directory ``dir_id`` in
        one read transaction: (the directory holding the last name, the file it names or
        None if there is none).  A missing name before the last raises NotFound, one that
        is not a directory NotDirectory."""
        if not names:
            raise E.InvalidArgument("empty path")

        def fn(txn: Any) -> tuple[int, FileRecord | None]:
            def search(parent: int, name: bytes) -> int | None:
                _need(ident, _get_dir(txn, parent), X)
                check_name(name)
                return txn.lookup(parent, name)

            parent = dir_id
            for name in names[:-1]:
                child = search(parent, name)
                if child is None:
                    raise E.NotFound(repr(name))
                parent = child
            leaf = search(parent, names[-1])
            return parent, None if leaf is None else _get(txn, leaf)
        return await share.store.transact(fn, write=False)

    async def access(self, share: ShareLike, ident: Identity,
                     fileid: int) -> tuple[FileRecord, int]:
        rec = await self.getattr(share, fileid)
        return rec, granted(ident, rec)

    async def readlink(self, share: ShareLike, ident: Identity, fileid: int) -> FileRecord:
        rec = await self.getattr(share, fileid)
        if rec.ftype != FileType.LNK:
            raise E.InvalidArgument("not a symbolic link")
        return rec

    async def prepare_read(self, share: ShareLike, ident: Identity, fileid: int) -> FileRecord:
        """Check that ``ident`` may read the file's content; return its record."""
        rec = await self.getattr(share, fileid)
        if rec.ftype == FileType.DIR:
            raise E.IsDirectory("read of a directory")
        if rec.ftype != FileType.REG:
            raise E.InvalidArgument("read of a special file")
        # The owner may read regardless of mode, and execute implies read for a
        # client loading a program: both as Linux nfsd does for open files.
        if ident.uid != rec.uid and not allowed(ident, rec, R) and not allowed(ident, rec, X):
            raise E.AccessDenied(f"fileid {fileid}")
        return rec

    async def readdir(self, share: ShareLike, ident: Identity, dir_id: int, after: int,
                      limit: int, plus: bool) -> tuple[FileRecord, list, bool]:
        """Return (directory, [(DirEntry, FileRecord | None)], eof) after cookie ``after``.

        Cookies 1 and 2 are "." and ".."; real entries start at 3.
        """
        def fn(txn: Any) -> tuple[FileRecord, list, bool]:
            d = _get_dir(txn, dir_id)
            _need(ident, d, R)
            out: list[tuple[DirEntry, FileRecord | None]] = []
            if after < 1:
                out.append((DirEntry(1, b".", d.fileid), d if plus else None))
            if after < 2:
                parent = _get(txn, d.parent) if plus else None
                out.append((DirEntry(2, b"..", d.parent), parent))
            entries, eof = txn.list_entries(dir_id, max(after, 2), max(limit - len(out), 1),
                                            plus)
            out.extend(entries)
            return d, out, eof
        return await share.store.transact(fn, write=False)

    async def fsstat(self, share: ShareLike) -> FsStats:
        files, nbytes = await share.store.usage()
        free = max(CAPACITY_BYTES - nbytes, 0)
        ffree = max(CAPACITY_FILES - files, 0)
        return FsStats(CAPACITY_BYTES, free, free, CAPACITY_FILES, ffree, ffree)

    # -- writes ---------------------------------------------------------------

    def _writable(self, share: ShareLike) -> None:
        if share.read_only:
            raise E.ReadOnly(share.name)

    async def ensure_root(self, share: ShareLike, uid: int, gid: int, mode: int) -> int:
        """Return the root directory of ``share`` in its store, creating it once."""
        def fn(txn: Any) -> int:
            root = txn.get_root(share.name)
            if root is not None and txn.get(root) is not None:
                return root
            fid = txn.new_fileid()
            now = _now()
            txn.put(FileRecord(fid, FileType.DIR, mode & 0o7777, 2, uid, gid, 0, (0, 0),
                               now, now, now, fid, b""))
            txn.set_root(share.name, fid)
            txn.add_usage(1, 0)
            return fid
        return await share.store.transact(fn, durable=share.synchronous)

    async def setattr(self, share: ShareLike, ident: Identity, fileid: int, attrs: SetAttrs,
                      guard_ctime: int | None = None) -> tuple[WccAttr, FileRecord]:
        """Apply ``attrs``; with ``guard_ctime`` fail with NotSync unless ctime matches."""
        self._writable(share)

        def fn(txn: Any) -> tuple[WccAttr, FileRecord]:
            rec = _get(txn, fileid)
            pre = WccAttr.of(rec)
            if guard_ctime is not None and guard_ctime != rec.ctime:
                raise E.NotSync(f"fileid {fileid}")
            new = self._apply(ident, rec, attrs)
            if new is not rec:
                txn.put(new)
                if new.size != rec.size:
                    txn.add_usage(0, new.size - rec.size)
            return pre, new
        return await share.store.transact(fn, durable=share.synchronous)

    def _apply(self, ident: Identity, rec: FileRecord, a: SetAttrs) -> FileRecord:
        owner = ident.uid == 0 or ident.uid == rec.uid
        changes: dict[str, Any] = {}
        now = _now()
        if a.mode is not None:
            if not owner:
                raise E.NotPermitted("chmod by a non-owner")
            mode = a.mode & 0o7777
            if ident.uid != 0 and mode & stat.S_ISGID and not in_group(ident, rec.gid):
                mode &= ~stat.S_ISGID
            changes["mode"] = mode
        if a.uid is not None and a.uid != rec.uid:
            if ident.uid != 0:
                raise E.NotPermitted("chown by a non-root user")
            changes["uid"] = a.uid
        if a.gid is not None and a.gid != rec.gid:
            if ident.uid != 0 and not (ident.uid == rec.uid and in_group(ident, a.gid)):
                raise E.NotPermitted("chgrp to a group the caller is not in")
            changes["gid"] = a.gid
        if ("uid" in changes or "gid" in changes) and rec.ftype != FileType.DIR:
            mode = changes.get("mode", rec.mode)
            if ident.uid != 0 or mode & (stat.S_ISUID | stat.S_ISGID):
                changes["mode"] = mode & ~(stat.S_ISUID | stat.S_ISGID)
        if a.size is not None:
            if rec.ftype == FileType.DIR:
                raise E.IsDirectory("truncate of a directory")
            if rec.ftype != FileType.REG:
                raise E.InvalidArgument("truncate of a special file")
            if a.size > MAX_FILE_SIZE:
                raise E.FileTooBig(str(a.size))
            if ident.uid != rec.uid and not allowed(ident, rec, W):
                raise E.AccessDenied("truncate")
            if a.size != rec.size:
                changes["size"] = a.size
                changes["mtime"] = now
        for which in ("atime", "mtime"):
            how = getattr(a, which)
            if how is None or how[0] == SetTime.DONT_CHANGE:
                continue
            if how[0] == SetTime.SERVER:
                if not owner and not allowed(ident, rec, W):
                    raise E.AccessDenied(f"set {which}")
                changes[which] = now
            else:
                if not owner:
                    raise E.NotPermitted(f"set {which} by a non-owner")
                changes[which] = how[1]
        if not changes and rec.verifier is None:
            return rec
        changes["ctime"] = now
        changes["verifier"] = None
        return rec._replace(**changes)

    async def create(self, share: ShareLike, ident: Identity, dir_id: int, name: bytes,
                     ftype: int, attrs: SetAttrs = SetAttrs(), exclusive: bool = False,
                     verifier: bytes | None = None, target: bytes = b"",
                     rdev: tuple[int, int] = (0, 0), unchecked: bool = False,
                     durable: bool | None = None) -> Created:
        """Create ``name`` in ``dir_id``.

        ``unchecked`` (regular files only) opens an existing regular file instead of
        failing, applying ``attrs`` to it.  With ``verifier`` (exclusive create) an
        existing file carrying the same verifier is a retransmission and succeeds.
        ``durable`` False: committed without an fsync (the caller makes it durable, see
        Share.finish_create); by default, as the share's tier says.
        """
        self._writable(share)
        check_new_name(name)
        if ftype in (FileType.CHR, FileType.BLK) and ident.uid != 0:
            raise E.NotPermitted("device nodes need root")

        def fn(txn: Any) -> Created:
            d = _get_dir(txn, dir_id)
            _need(ident, d, W | X)
            pre = WccAttr.of(d)
            existing = txn.lookup(dir_id, name)
            if existing is not None:
                old = _get(txn, existing)
                if exclusive and verifier is not None and old.verifier == verifier:
                    return Created(pre, d, old, None, True)
                if unchecked and old.ftype == FileType.REG:
                    # As Linux nfsd: of the attributes only a size (truncation) applies.
                    new = self._apply(ident, old, SetAttrs(size=attrs.size))
                    if new is not old:
                        txn.put(new)
                    shrunk = old.size if new.size < old.size else None
                    if new.size != old.size:
                        txn.add_usage(0, new.size - old.size)
                    return Created(pre, d, new, shrunk, True)
                raise E.Exists(repr(name))
            now = _now()
            fid = txn.new_fileid()
            mode = attrs.mode if attrs.mode is not None else DEFAULT_MODES.get(ftype, 0o644)
            uid, gid = ident.uid, ident.gid
            if d.mode & stat.S_ISGID:
                gid = d.gid
                if ftype == FileType.DIR:
                    mode |= stat.S_ISGID
            if ident.uid == 0:
                uid = attrs.uid if attrs.uid is not None else uid
                gid = attrs.gid if attrs.gid is not None else gid
            elif attrs.gid is not None and in_group(ident, attrs.gid):
                gid = attrs.gid
            is_dir = ftype == FileType.DIR
            size = len(target) if ftype == FileType.LNK else 0
            atime = mtime = now
            if attrs.atime is not None and attrs.atime[0] == SetTime.CLIENT:
                atime = attrs.atime[1]
            if attrs.mtime is not None and attrs.mtime[0] == SetTime.CLIENT:
                mtime = attrs.mtime[1]
            rec = FileRecord(fid, ftype, mode & 0o7777, 2 if is_dir else 1, uid, gid, size, rdev,
                             atime, mtime, now, dir_id if is_dir else 0, target,
                             verifier if exclusive else None)
            txn.put(rec)
            txn.add_entry(dir_id, name, fid)
            if is_dir:
                if d.nlink >= MAX_LINKS:
                    raise E.TooManyLinks("parent directory")
                d = d._replace(nlink=d.nlink + 1)
            d = d._replace(mtime=now, ctime=now)
            txn.put(d)
            txn.add_usage(1, size)
            return Created(pre, d, rec)
        made = await share.store.transact(
            fn, durable=share.synchronous if durable is None else durable)
        if self.listeners and not made.existed:
            self._changed(share, dir_id, ADDED, name)
        return made

    async def remove(self, share: ShareLike, ident: Identity, dir_id: int, name: bytes,
                     rmdir: bool, durable: bool | None = None) -> Unlinked:
        """Unlink ``name`` (REMOVE) or remove the empty directory ``name`` (RMDIR).
        ``durable`` False: committed without an fsync (the caller syncs, see
        Share.finish_unlink); by default, as the share's tier says."""
        self._writable(share)
        if name == b".":
            raise E.InvalidArgument("cannot remove '.'")
        if name == b"..":
            raise E.NotEmpty("cannot remove '..'")
        check_name(name)

        def fn(txn: Any) -> Unlinked:
            d = _get_dir(txn, dir_id)
            _need(ident, d, W | X)
            pre = WccAttr.of(d)
            victim = _entry_to_unlink(txn, ident, d, name)
            fid = victim.fileid
            now = _now()
            if rmdir:
                if victim.ftype != FileType.DIR:
                    raise E.NotDirectory(repr(name))
                if txn.has_entries(fid):
                    raise E.NotEmpty(repr(name))
                d = d._replace(nlink=d.nlink - 1)
            elif victim.ftype == FileType.DIR:
                raise E.IsDirectory(repr(name))
            txn.remove_entry(dir_id, name)
            d = d._replace(mtime=now, ctime=now)
            txn.put(d)
            victim, freed = self._drop_link(txn, victim, now)
            return Unlinked(pre, d, victim, freed)
        gone = await share.store.transact(
            fn, durable=share.synchronous if durable is None else durable)
        if self.listeners:
            self._changed(share, dir_id, REMOVED, name)
        return gone

    @staticmethod
    def _drop_link(txn: Any, rec: FileRecord, now: int) -> tuple[FileRecord, bool]:
        if rec.ftype == FileType.DIR or rec.nlink <= 1:
            txn.delete(rec.fileid)
            txn.add_usage(-1, -rec.size)
            return rec._replace(nlink=0, ctime=now), True
        rec = rec._replace(nlink=rec.nlink - 1, ctime=now)
        txn.put(rec)
        return rec, False

    async def rename(self, share: ShareLike, ident: Identity, from_dir: int, from_name: bytes,
                     to_dir: int, to_name: bytes, durable: bool | None = None) -> Renamed:
        """Move ``from_name`` to ``to_name`` with POSIX rename(2) semantics (``durable``:
        as for remove)."""
        self._writable(share)
        for n in (from_name, to_name):
            if n in (b".", b".."):
                raise E.InvalidArgument("cannot rename '.' or '..'")
            check_name(n)

        def fn(txn: Any) -> Renamed:
            src_dir = _get_dir(txn, from_dir)
            dst_dir = src_dir if to_dir == from_dir else _get_dir(txn, to_dir)
            _need(ident, src_dir, W | X)
            _need(ident, dst_dir, W | X)
            from_pre, to_pre = WccAttr.of(src_dir), WccAttr.of(dst_dir)
            src = _entry_to_unlink(txn, ident, src_dir, from_name)
            fid = src.fileid
            target_id = txn.lookup(to_dir, to_name)
            if target_id == fid:
                return Renamed(from_pre, src_dir, to_pre, dst_dir, None)  # same file: no-op
            is_dir = src.ftype == FileType.DIR
            if is_dir and from_dir != to_dir:
                _need(ident, src, W)  # its ".." entry changes
                self._refuse_loop(txn, fid, to_dir)
            now = _now()
            replaced = None
            if target_id is not None:
                target = _entry_to_unlink(txn, ident, dst_dir, to_name)
                if is_dir:
                    if target.ftype != FileType.DIR:
                        raise E.NotDirectory(repr(to_name))
                    if txn.has_entries(target_id):
                        raise E.NotEmpty(repr(to_name))
                elif target.ftype == FileType.DIR:
                    raise E.IsDirectory(repr(to_name))
                txn.remove_entry(to_dir, to_name)
                if target.ftype == FileType.DIR:
                    dst_dir = dst_dir._replace(nlink=dst_dir.nlink - 1)
                target, freed = self._drop_link(txn, target, now)
                replaced = target if freed else None
            txn.remove_entry(from_dir, from_name)
            txn.add_entry(to_dir, to_name, fid)
            moved = src._replace(ctime=now)
            if is_dir and from_dir != to_dir:
                moved = moved._replace(parent=to_dir)
                src_dir = src_dir._replace(nlink=src_dir.nlink - 1)
                dst_dir = dst_dir._replace(nlink=dst_dir.nlink + 1)
            txn.put(moved)
            src_dir = src_dir._replace(mtime=now, ctime=now)
            if from_dir == to_dir:
                dst_dir = src_dir._replace(nlink=dst_dir.nlink)
                src_dir = dst_dir
            else:
                dst_dir = dst_dir._replace(mtime=now, ctime=now)
                txn.put(dst_dir)
            txn.put(src_dir)
            return Renamed(from_pre, src_dir, to_pre, dst_dir, replaced)
        moved = await share.store.transact(
            fn, durable=share.synchronous if durable is None else durable)
        if self.listeners:
            if from_dir == to_dir:
                self._changed(share, from_dir, RENAMED_OLD, from_name)
                self._changed(share, to_dir, RENAMED_NEW, to_name)
            else:
                self._changed(share, from_dir, REMOVED, from_name)
                self._changed(share, to_dir, ADDED, to_name)
        return moved

    @staticmethod
    def _refuse_loop(txn: Any, moving: int, dest: int) -> None:
        """A directory may not move into its own subtree."""
        cur = dest
        for _ in range(4096):
            if cur == moving:
                raise E.InvalidArgument("cannot move a directory into itself")
            rec = _get(txn, cur)
            if rec.parent == cur:
                return
            cur = rec.parent
        raise E.InvalidArgument("directory tree too deep")

    async def link(self, share: ShareLike, ident: Identity, fileid: int, dir_id: int,
                   name: bytes) -> tuple[FileRecord, WccAttr, FileRecord]:
        """Add a hard link; return (file, directory before, directory after)."""
        self._writable(share)
        check_new_name(name)

        def fn(txn: Any) -> tuple[FileRecord, WccAttr, FileRecord]:
            rec = _get(txn, fileid)
            d = _get_dir(txn, dir_id)
            _need(ident, d, W | X)
            pre = WccAttr.of(d)
            if rec.ftype == FileType.DIR:
                raise E.NotPermitted("hard link to a directory")
            if rec.nlink >= MAX_LINKS:
                raise E.TooManyLinks(f"fileid {fileid}")
            if txn.lookup(dir_id, name) is not None:
                raise E.Exists(repr(name))
            now = _now()
            txn.add_entry(dir_id, name, fileid)
            rec = rec._replace(nlink=rec.nlink + 1, ctime=now)
            d = d._replace(mtime=now, ctime=now)
            txn.put(rec)
            txn.put(d)
            return rec, pre, d
        linked = await share.store.transact(fn, durable=share.synchronous)
        if self.listeners:
            self._changed(share, dir_id, ADDED, name)
        return linked

    async def prepare_write(self, share: ShareLike, ident: Identity, fileid: int) -> FileRecord:
        """Check a content write is allowed (no change is made); return the record."""
        self._writable(share)
        rec = await self.getattr(share, fileid)
        if rec.ftype == FileType.DIR:
            raise E.IsDirectory("write to a directory")
        if rec.ftype != FileType.REG:
            raise E.InvalidArgument("write to a special file")
        if ident.uid != rec.uid and not allowed(ident, rec, W):
            raise E.AccessDenied(f"fileid {fileid}")
        return rec

    async def commit_write(self, share: ShareLike, fileid: int, end: int,
                           durable: bool = True) -> tuple[WccAttr, FileRecord]:
        """Record that bytes up to ``end`` were written: grow size, set mtime and ctime.
        An UNSTABLE write passes ``durable`` False: COMMIT makes it durable later."""
        if end > MAX_FILE_SIZE:
            raise E.FileTooBig(str(end))

        def fn(txn: Any) -> tuple[WccAttr, FileRecord]:
            rec = _get(txn, fileid)
            pre = WccAttr.of(rec)
            now = _now()
            size = end if end > rec.size else rec.size
            mode = rec.mode
            if mode & (stat.S_ISUID | stat.S_ISGID):
                mode &= ~(stat.S_ISUID | stat.S_ISGID)
            new = rec._replace(size=size, mtime=now, ctime=now, mode=mode)
            txn.put(new)
            if size != rec.size:
                txn.add_usage(0, size - rec.size)
            return pre, new
        return await share.store.transact(fn, durable=durable and share.synchronous)
