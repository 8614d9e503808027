"""NFSv3 procedures (RFC 1813 section 3.3): one coroutine each, over the services.

Each handler takes decoded arguments and a CallContext and returns a
``(nfsstat3, body)`` result for the codec.  Errors are domain exceptions mapped
once, in ``STATUS_OF``; anything unexpected becomes NFS3ERR_SERVERFAULT.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.logger import Logger

from dittofs.metadata import errors as E
from dittofs.metadata.permissions import R, W, X
from dittofs.metadata.service import MAX_FILE_SIZE, MAX_LINKS, MetadataService
from dittofs.metadata.types import NAME_MAX, FileRecord, FileType, Identity, SetAttrs, WccAttr
from dittofs.nfs import codec as C
from dittofs.nfs.const import (
    MAX_IO,
    NFS_PROGRAM,
    NFS_V3,
    PREF_IO,
    PREF_READDIR,
    Access,
    CreateMode,
    FsProperties,
    NfsStat,
    Proc,
    StableHow,
    TimeHow,
)
from dittofs.nfs.handles import BadHandle, HandleCodec
from dittofs.nfs.types import Fattr3, NfsTime3, WccAttr3, WccData
from dittofs.rpc.program import CallContext, Procedure, Program
from dittofs.runtime.shares import Share, ShareTable

log = Logger(namespace="dittofs.nfs")

OK = NfsStat.NFS3_OK
_NS = 1_000_000_000
_U32_MAX = 2**32 - 1
_NS_LIMIT = (_U32_MAX + 1) * _NS  # times at or past this do not fit nfstime3's seconds
_ZERO_VERF = bytes(8)
FS_PROPERTIES = (FsProperties.LINK | FsProperties.SYMLINK | FsProperties.HOMOGENEOUS
                 | FsProperties.CANSETTIME)


class NfsError(Exception):
    """Raised inside a handler to answer with a given status."""

    def __init__(self, status: NfsStat) -> None:
        super().__init__(status.name)
        self.status = status


STATUS_OF: dict[type, NfsStat] = {
    E.NotFound: NfsStat.NFS3ERR_NOENT,
    E.Exists: NfsStat.NFS3ERR_EXIST,
    E.NotDirectory: NfsStat.NFS3ERR_NOTDIR,
    E.IsDirectory: NfsStat.NFS3ERR_ISDIR,
    E.NotEmpty: NfsStat.NFS3ERR_NOTEMPTY,
    E.AccessDenied: NfsStat.NFS3ERR_ACCES,
    E.NotPermitted: NfsStat.NFS3ERR_PERM,
    E.Stale: NfsStat.NFS3ERR_STALE,
    E.InvalidArgument: NfsStat.NFS3ERR_INVAL,
    E.NameTooLong: NfsStat.NFS3ERR_NAMETOOLONG,
    E.ReadOnly: NfsStat.NFS3ERR_ROFS,
    E.NoSpace: NfsStat.NFS3ERR_NOSPC,
    E.FileTooBig: NfsStat.NFS3ERR_FBIG,
    E.NotSupported: NfsStat.NFS3ERR_NOTSUPP,
    E.CrossDevice: NfsStat.NFS3ERR_XDEV,
    E.TooManyLinks: NfsStat.NFS3ERR_MLINK,
    E.StoreIOError: NfsStat.NFS3ERR_IO,
    E.NotSync: NfsStat.NFS3ERR_NOT_SYNC,
    E.BadType: NfsStat.NFS3ERR_BADTYPE,
}


def status_of(exc: BaseException, proc: str) -> NfsStat:
    """The one mapping from exceptions to nfsstat3; unexpected ones are logged."""
    if isinstance(exc, NfsError):
        return exc.status
    st = STATUS_OF.get(type(exc))
    if st is not None:
        return st
    log.failure("NFS {proc}: unexpected error", proc=proc)
    return NfsStat.NFS3ERR_SERVERFAULT


def _time(ns: int) -> tuple[int, int]:
    s, n = divmod(ns, _NS)
    if s < 0:
        return 0, 0
    if s > _U32_MAX:
        return _U32_MAX, n
    return s, n


def _ns(t: Any) -> int:
    return t[0] * _NS + t[1]


def fattr(share: Share, r: FileRecord) -> Fattr3:
    a, m, c = r.atime, r.mtime, r.ctime
    if 0 <= a < _NS_LIMIT and 0 <= m < _NS_LIMIT and 0 <= c < _NS_LIMIT:  # every usual time
        return Fattr3(r.ftype, r.mode & 0o7777, r.nlink if r.nlink <= _U32_MAX else _U32_MAX,
                      r.uid, r.gid, r.size, r.size, r.rdev[0], r.rdev[1], share.fsid, r.fileid,
                      a // _NS, a % _NS, m // _NS, m % _NS, c // _NS, c % _NS)
    a_s, a_n = _time(a)
    m_s, m_n = _time(m)
    c_s, c_n = _time(c)
    return Fattr3(r.ftype, r.mode & 0o7777, min(r.nlink, _U32_MAX), r.uid, r.gid, r.size,
                  r.size, r.rdev[0], r.rdev[1], share.fsid, r.fileid,
                  a_s, a_n, m_s, m_n, c_s, c_n)


def wcc_attr(w: WccAttr | None) -> WccAttr3 | None:
    if w is None:
        return None
    m_s, m_n = _time(w.mtime)
    c_s, c_n = _time(w.ctime)
    return WccAttr3(w.size, m_s, m_n, c_s, c_n)


def to_setattrs(s: Any) -> SetAttrs:
    """sattr3 -> SetAttrs."""
    def how(t: Any) -> tuple[int, int] | None:
        tag, value = t
        if tag == TimeHow.DONT_CHANGE:
            return None
        if tag == TimeHow.SET_TO_SERVER_TIME:
            return (1, 0)
        return (2, _ns(value))
    return SetAttrs(s.mode, s.uid, s.gid, s.size, how(s.atime), how(s.mtime))


def _access_mask(bits: int, is_dir: bool) -> int:
    """The ACCESS3 bits that Unix permission bits ``bits`` (R|W|X) grant."""
    mask = Access.READ if bits & R else 0
    if is_dir:
        if bits & X:
            mask |= Access.LOOKUP | Access.EXECUTE
            if bits & W:
                mask |= Access.MODIFY | Access.EXTEND | Access.DELETE
    else:
        if bits & X:
            mask |= Access.EXECUTE
        if bits & W:
            mask |= Access.MODIFY | Access.EXTEND
    return int(mask)


#: By (is a directory, R|W|X granted): plain ints, computed once (IntFlag arithmetic per
#: call cost ~2 us of an ~13 us ACCESS).
_ACCESS_MASKS = tuple(tuple(_access_mask(bits, is_dir) for bits in range(8))
                      for is_dir in (False, True))
_NOT_WRITING = ~int(Access.MODIFY | Access.EXTEND | Access.DELETE)


class NfsHandlers:
    """The NFSv3 program over a share table and the metadata/payload services."""

    def __init__(self, shares: ShareTable, metadata: MetadataService, handles: HandleCodec,
                 write_verifier: bytes | None = None, metrics: Any = None) -> None:
        self.metrics = metrics
        self.shares = shares
        self.md = metadata
        self.handles = handles
        # Changes on every start so clients resend UNSTABLE writes after a restart.
        self.verifier = write_verifier or (
            int(time.time()).to_bytes(4, "big") + os.urandom(4))
        self.cookieverf = handles.cookie_verifier()

    # -- helpers -----------------------------------------------------------

    def resolve(self, fh: bytes, ctx: CallContext, write: bool = False) -> tuple[Share, int]:
        try:
            sid, fid = self.handles.parse(fh)
        except BadHandle:
            raise NfsError(NfsStat.NFS3ERR_BADHANDLE) from None
        share = self.shares.by_sid.get(sid)
        if share is None:
            raise NfsError(NfsStat.NFS3ERR_STALE)
        if not share.client_allowed(ctx.client[0]):
            raise NfsError(NfsStat.NFS3ERR_ACCES)
        if share.acl is not None:
            cred = ctx.call.cred
            lvl = share.level(cred.uid, cred.gid, cred.gids) if cred is not None else "none"
            if lvl == "none" or (write and lvl == "read"):
                raise NfsError(NfsStat.NFS3ERR_ACCES)
        return share, fid

    @staticmethod
    def identity(share: Share, ctx: CallContext) -> Identity:
        cred = ctx.call.cred
        if cred is None:
            return share.anonymous()
        return share.identity(cred.uid, cred.gid, cred.gids)

    async def post_attr(self, share: Share | None, fid: int) -> Fattr3 | None:
        """Attributes for a failure reply; absent when they cannot be had."""
        if share is None:
            return None
        try:
            rec = await share.store.get(fid)
        except Exception:
            return None
        return None if rec is None else fattr(share, rec)

    async def fail_wcc(self, share: Share | None, fid: int) -> WccData:
        return WccData(None, await self.post_attr(share, fid))

    def fh(self, share: Share, rec: FileRecord) -> bytes:
        return self.handles.make(share.sid, rec.fileid)

    # -- procedures ----------------------------------------------------------

    async def null(self, args: None, ctx: CallContext) -> None:
        return None

    async def getattr(self, fh: bytes, ctx: CallContext) -> Any:
        try:
            share, fid = self.resolve(fh, ctx)
            return OK, fattr(share, await self.md.getattr(share, fid))
        except Exception as e:
            return status_of(e, "GETATTR"), None

    async def setattr(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.object, ctx, write=True)
            guard = _ns(a.guard) if a.guard is not None else None
            attrs = to_setattrs(a.new_attributes)
            pre, post = await self.md.setattr(share, self.identity(share, ctx), fid, attrs, guard)
            if attrs.size is not None and pre.size != post.size:
                await share.payload.truncate(share.content_id(fid), post.size, share.synchronous)
            return OK, WccData(wcc_attr(pre), fattr(share, post))
        except Exception as e:
            return status_of(e, "SETATTR"), await self.fail_wcc(share, fid)

    async def lookup(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.dir, ctx)
            child, d = await self.md.lookup(share, self.identity(share, ctx), fid, a.name)
            return OK, C.LookupOk(self.fh(share, child), fattr(share, child), fattr(share, d))
        except Exception as e:
            return status_of(e, "LOOKUP"), await self.post_attr(share, fid)

    async def access(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.object, ctx)
            rec, bits = await self.md.access(share, self.identity(share, ctx), fid)
            mask = _ACCESS_MASKS[rec.ftype == FileType.DIR][bits]
            cred = ctx.call.cred
            if share.read_only or (share.acl is not None and cred is not None and share.level(
                    cred.uid, cred.gid, cred.gids) == "read"):
                mask &= _NOT_WRITING
            return OK, C.AccessOk(fattr(share, rec), a.access & mask)
        except Exception as e:
            return status_of(e, "ACCESS"), await self.post_attr(share, fid)

    async def readlink(self, fh: bytes, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(fh, ctx)
            rec = await self.md.readlink(share, self.identity(share, ctx), fid)
            return OK, C.ReadlinkOk(fattr(share, rec), rec.target)
        except Exception as e:
            return status_of(e, "READLINK"), await self.post_attr(share, fid)

    async def read(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.file, ctx)
            rec = await self.md.prepare_read(share, self.identity(share, ctx), fid)
            size = rec.size
            if a.offset >= size:
                return OK, C.ReadOk(fattr(share, rec), 0, True, b"")
            n = min(a.count, MAX_IO, size - a.offset)
            data = await share.payload.read_at(share.content_id(fid), a.offset, n)
            if self.metrics is not None:
                self.metrics.bytes.labels(share.name, "read").inc(n)
            return OK, C.ReadOk(fattr(share, rec), n, a.offset + n >= size, data)
        except Exception as e:
            return status_of(e, "READ"), await self.post_attr(share, fid)

    async def write(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.file, ctx, write=True)
            data = a.data
            count = a.count
            if count > len(data) or count > MAX_IO:
                raise NfsError(NfsStat.NFS3ERR_INVAL)
            if a.offset + count > MAX_FILE_SIZE:
                raise NfsError(NfsStat.NFS3ERR_FBIG)
            await self.md.prepare_write(share, self.identity(share, ctx), fid)
            cid = share.content_id(fid)
            stable = a.stable != StableHow.UNSTABLE
            # UNSTABLE: acknowledged once in the cache, its WAL record queued; a COMMIT
            # waits for that record (and fails if it could not be written), and a restart
            # changes the verifier, so the client writes again what it did not commit.
            # A writeback share's COMMIT returns at once: its writes wait for the WAL.
            sync = stable and share.synchronous
            await share.payload.write_at(cid, a.offset, data[:count], sync,
                                         unstable=not stable and share.synchronous)
            if sync and share.durability == "remote":
                await share.payload.flush(cid, True)
            pre, post = await self.md.commit_write(share, fid, a.offset + count, durable=sync)
            committed = StableHow.FILE_SYNC if stable else StableHow.UNSTABLE
            if self.metrics is not None:
                self.metrics.bytes.labels(share.name, "written").inc(count)
            return OK, C.WriteOk(WccData(wcc_attr(pre), fattr(share, post)), count, committed,
                                 self.verifier)
        except Exception as e:
            return status_of(e, "WRITE"), await self.fail_wcc(share, fid)

    async def _make(self, where: Any, ctx: CallContext, proc: str, ftype: int,
                    sattr: Any = None, **kw: Any) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(where.dir, ctx, write=True)
            attrs = to_setattrs(sattr) if sattr is not None else SetAttrs()
            logged = share.logs_creates(ftype)
            made = await self.md.create(share, self.identity(share, ctx), fid, where.name,
                                        ftype, attrs, durable=False if logged else None, **kw)
            if logged:
                await share.finish_create(fid, where.name, made)
            if made.truncated_from is not None:
                await share.payload.truncate(share.content_id(made.file.fileid), made.file.size,
                                             share.synchronous)
            return OK, C.CreateOk(self.fh(share, made.file), fattr(share, made.file),
                                  WccData(wcc_attr(made.dir_pre), fattr(share, made.dir_post)))
        except Exception as e:
            return status_of(e, proc), await self.fail_wcc(share, fid)

    async def create(self, a: Any, ctx: CallContext) -> Any:
        mode, how = a.how
        if mode == CreateMode.EXCLUSIVE:
            return await self._make(a.where, ctx, "CREATE", FileType.REG, exclusive=True,
                                    verifier=how)
        return await self._make(a.where, ctx, "CREATE", FileType.REG, how,
                                unchecked=mode == CreateMode.UNCHECKED)

    async def mkdir(self, a: Any, ctx: CallContext) -> Any:
        return await self._make(a.where, ctx, "MKDIR", FileType.DIR, a.attributes)

    async def symlink(self, a: Any, ctx: CallContext) -> Any:
        return await self._make(a.where, ctx, "SYMLINK", FileType.LNK, a.symlink_attributes,
                                target=a.symlink_data)

    async def mknod(self, a: Any, ctx: CallContext) -> Any:
        ftype, what = a.what
        if ftype in (FileType.CHR, FileType.BLK):
            return await self._make(a.where, ctx, "MKNOD", ftype, what.dev_attributes,
                                    rdev=(what.spec.specdata1, what.spec.specdata2))
        if ftype in (FileType.SOCK, FileType.FIFO):
            return await self._make(a.where, ctx, "MKNOD", ftype, what)
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.where.dir, ctx)
        except Exception as e:
            return status_of(e, "MKNOD"), WccData(None, None)
        return NfsStat.NFS3ERR_BADTYPE, await self.fail_wcc(share, fid)

    async def _remove(self, a: Any, ctx: CallContext, rmdir: bool) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.dir, ctx, write=True)
            gone = await self.md.remove(share, self.identity(share, ctx), fid, a.name, rmdir,
                                        durable=False)
            await share.finish_unlink(gone.victim if gone.freed else None, fid, a.name)
            return OK, WccData(wcc_attr(gone.dir_pre), fattr(share, gone.dir_post))
        except Exception as e:
            return status_of(e, "RMDIR" if rmdir else "REMOVE"), await self.fail_wcc(share, fid)

    async def remove(self, a: Any, ctx: CallContext) -> Any:
        return await self._remove(a, ctx, False)

    async def rmdir(self, a: Any, ctx: CallContext) -> Any:
        return await self._remove(a, ctx, True)

    async def rename(self, a: Any, ctx: CallContext) -> Any:
        share = to_share = None
        fid = to_fid = 0
        try:
            share, fid = self.resolve(a.from_.dir, ctx, write=True)
            to_share, to_fid = self.resolve(a.to.dir, ctx, write=True)
            if to_share is not share:
                raise E.CrossDevice("rename across shares")
            r = await self.md.rename(share, self.identity(share, ctx), fid, a.from_.name,
                                     to_fid, a.to.name, durable=False)
            await share.finish_unlink(r.replaced)
            return OK, C.RenameWcc(WccData(wcc_attr(r.from_pre), fattr(share, r.from_post)),
                                   WccData(wcc_attr(r.to_pre), fattr(share, r.to_post)))
        except Exception as e:
            return status_of(e, "RENAME"), C.RenameWcc(await self.fail_wcc(share, fid),
                                                       await self.fail_wcc(to_share, to_fid))

    async def link(self, a: Any, ctx: CallContext) -> Any:
        share = dshare = None
        fid = dfid = 0
        try:
            share, fid = self.resolve(a.file, ctx, write=True)
            dshare, dfid = self.resolve(a.link.dir, ctx, write=True)
            if dshare is not share:
                raise E.CrossDevice("link across shares")
            rec, pre, post = await self.md.link(share, self.identity(share, ctx), fid, dfid,
                                                a.link.name)
            return OK, C.LinkRes(fattr(share, rec), WccData(wcc_attr(pre), fattr(share, post)))
        except Exception as e:
            return status_of(e, "LINK"), C.LinkRes(await self.post_attr(share, fid),
                                                   await self.fail_wcc(dshare, dfid))

    def _check_cookie(self, cookie: int, verf: bytes) -> None:
        if cookie != 0 and verf != _ZERO_VERF and verf != self.cookieverf:
            raise NfsError(NfsStat.NFS3ERR_BAD_COOKIE)

    async def readdir(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.dir, ctx)
            self._check_cookie(a.cookie, a.cookieverf)
            limit = max(a.count // 24, 1) + 2
            d, entries, eof = await self.md.readdir(share, self.identity(share, ctx), fid,
                                                    a.cookie, min(limit, 8192), plus=False)
            used = 108  # status, dir attributes, cookieverf, list end, eof
            out = []
            for e, _ in entries:
                size = 24 + len(e.name) + (-len(e.name) & 3)
                if used + size > a.count:
                    eof = False
                    break
                used += size
                out.append(C.Entry3(e.fileid, e.name, e.cookie))
            if not out and entries:
                raise NfsError(NfsStat.NFS3ERR_TOOSMALL)
            return OK, C.ReaddirOk(fattr(share, d), self.cookieverf, out, eof)
        except Exception as e:
            return status_of(e, "READDIR"), await self.post_attr(share, fid)

    async def readdirplus(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.dir, ctx)
            self._check_cookie(a.cookie, a.cookieverf)
            ident = self.identity(share, ctx)
            used = 108  # status, dir attributes, cookieverf, list end, eof
            dirbytes = 0
            out = []
            cookie = a.cookie
            while True:
                # Entries (with their records) are fetched for what should fit, reckoning
                # 8-byte names, and then for what room is left: a fetch of entries that do
                # not fit is a waste of record reads.
                limit = max(min((a.maxcount - used) // 152, (a.dircount - dirbytes) // 32), 1) + 2
                d, entries, eof = await self.md.readdir(share, ident, fid, cookie,
                                                        min(limit, 4096), plus=True)
                full = False
                for e, rec in entries:
                    pad = len(e.name) + (-len(e.name) & 3)
                    dsize = 24 + pad
                    size = dsize + (88 if rec is not None else 4) + 8 + 24
                    if used + size > a.maxcount or dirbytes + dsize > a.dircount:
                        eof = False
                        full = True
                        break
                    used += size
                    dirbytes += dsize
                    if rec is None:
                        out.append(C.EntryPlus3(e.fileid, e.name, e.cookie, None, None))
                    else:
                        out.append(C.EntryPlus3(e.fileid, e.name, e.cookie, fattr(share, rec),
                                                self.fh(share, rec)))
                if full or eof or not entries:
                    break
                cookie = entries[-1][0].cookie
            if not out and entries:
                raise NfsError(NfsStat.NFS3ERR_TOOSMALL)
            return OK, C.ReaddirplusOk(fattr(share, d), self.cookieverf, out, eof)
        except Exception as e:
            return status_of(e, "READDIRPLUS"), await self.post_attr(share, fid)

    async def _fs_query(self, fh: bytes, ctx: CallContext, proc: str, body: Any) -> Any:
        """FSSTAT/FSINFO/PATHCONF: ``body(share, attributes)`` builds the resok."""
        share = None
        fid = 0
        try:
            share, fid = self.resolve(fh, ctx)
            rec = await self.md.getattr(share, fid)
            return OK, await body(share, fattr(share, rec))
        except Exception as e:
            return status_of(e, proc), await self.post_attr(share, fid)

    async def fsstat(self, fh: bytes, ctx: CallContext) -> Any:
        async def body(share: Share, attrs: Fattr3) -> Any:
            st = await self.md.fsstat(share)
            return C.FsstatOk(attrs, st.total_bytes, st.free_bytes, st.avail_bytes,
                              st.total_files, st.free_files, st.avail_files, 0)
        return await self._fs_query(fh, ctx, "FSSTAT", body)

    async def fsinfo(self, fh: bytes, ctx: CallContext) -> Any:
        async def body(share: Share, attrs: Fattr3) -> Any:
            return C.FsinfoOk(attrs, MAX_IO, PREF_IO, 4096, MAX_IO, PREF_IO, 4096, PREF_READDIR,
                              MAX_FILE_SIZE, NfsTime3(0, 1), int(FS_PROPERTIES))
        return await self._fs_query(fh, ctx, "FSINFO", body)

    async def pathconf(self, fh: bytes, ctx: CallContext) -> Any:
        async def body(share: Share, attrs: Fattr3) -> Any:
            return C.PathconfOk(attrs, MAX_LINKS, NAME_MAX, True, True, False, True)
        return await self._fs_query(fh, ctx, "PATHCONF", body)

    async def commit(self, a: Any, ctx: CallContext) -> Any:
        share = None
        fid = 0
        try:
            share, fid = self.resolve(a.file, ctx)
            rec = await self.md.getattr(share, fid)
            if rec.ftype != FileType.REG:
                raise E.IsDirectory("commit") if rec.ftype == FileType.DIR else \
                    E.InvalidArgument("commit")
            await share.flush(fid)
            return OK, C.CommitOk(WccData(wcc_attr(WccAttr.of(rec)), fattr(share, rec)),
                                  self.verifier)
        except Exception as e:
            return status_of(e, "COMMIT"), await self.fail_wcc(share, fid)

    def program(self) -> Program:
        table = {
            Proc.NULL: self.null, Proc.GETATTR: self.getattr, Proc.SETATTR: self.setattr,
            Proc.LOOKUP: self.lookup, Proc.ACCESS: self.access, Proc.READLINK: self.readlink,
            Proc.READ: self.read, Proc.WRITE: self.write, Proc.CREATE: self.create,
            Proc.MKDIR: self.mkdir, Proc.SYMLINK: self.symlink, Proc.MKNOD: self.mknod,
            Proc.REMOVE: self.remove, Proc.RMDIR: self.rmdir, Proc.RENAME: self.rename,
            Proc.LINK: self.link, Proc.READDIR: self.readdir, Proc.READDIRPLUS: self.readdirplus,
            Proc.FSSTAT: self.fsstat, Proc.FSINFO: self.fsinfo, Proc.PATHCONF: self.pathconf,
            Proc.COMMIT: self.commit,
        }
        procs = {int(p): Procedure(p.name, *C.SIGNATURES[p], h) for p, h in table.items()}
        return Program(NFS_PROGRAM, "NFS3", {NFS_V3: procs})
