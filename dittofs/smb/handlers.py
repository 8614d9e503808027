"""SMB2 tree and file commands over the shared MetadataService and payload services.

Each handler takes a ``Context`` (connection, session, tree, request bytes) and returns
a ``Reply`` or a ``Pending``; failures raise SmbError or domain errors, mapped once in
``STATUS_OF``.  Opens, share modes, byte-range locks, delete-on-close and change-notify
watches live here, shared by every connection of the adapter.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from dittofs.metadata import errors as E
from dittofs.metadata.permissions import R, W, X, granted
from dittofs.metadata.types import FileRecord, FileType, SetAttrs
from dittofs.smb import fileinfo as FI
from dittofs.smb import messages as M
from dittofs.smb.connection import Context, Pending, Reply
from dittofs.smb.header import Command
from dittofs.smb.info import InfoHandlers
from dittofs.smb.opens import (
    ACCESS_SYSTEM_SECURITY,
    APPEND_DATA,
    CLOSE_POSTQUERY_ATTRIB,
    CREATE,
    CREATED,
    DATA_ACCESS,
    DELETE,
    DELETE_CHILD,
    DELETE_ON_CLOSE,
    DIRECTORY_FILE,
    EXECUTE,
    FILE_ALL_ACCESS,
    FSCTL_DFS_GET_REFERRALS,
    FSCTL_DFS_GET_REFERRALS_EX,
    FSCTL_GET_REPARSE_POINT,
    FSCTL_PIPE_TRANSCEIVE,
    FSCTL_QUERY_ALLOCATED_RANGES,
    FSCTL_QUERY_NETWORK_INTERFACE_INFO,
    FSCTL_SET_SPARSE,
    FSCTL_VALIDATE_NEGOTIATE_INFO,
    MAXIMUM_ALLOWED,
    NON_DIRECTORY_FILE,
    NOTIFY_CLEANUP,
    OPEN,
    OPENED,
    OVERWRITE,
    OVERWRITE_IF,
    OVERWRITTEN,
    READ_ATTRIBUTES,
    READ_CONTROL,
    READ_DATA,
    READ_EA,
    SHARE_DELETE,
    SHARE_READ,
    SHARE_WRITE,
    SMB2_0_IOCTL_IS_FSCTL,
    SUPERSEDE,
    SUPERSEDED,
    SYNCHRONIZE,
    WRITE_ATTRIBUTES,
    WRITE_BITS,
    WRITE_DAC,
    WRITE_DATA,
    WRITE_EA,
    WRITE_OWNER,
    WRITE_THROUGH_FLAG,
    FileState,
    Lock,
    NotifyHub,
    Open,
    Tree,
    encode_name,
    map_generic,
    smb_name,
    split_path,
)
from dittofs.smb.srvsvc import STYPE_DISKTREE, STYPE_IPC_SPECIAL, ShareInfo, SrvsvcPipe
from dittofs.smb.status import SmbError, Status

log = Logger(namespace="dittofs.smb")


class SmbHandlers(InfoHandlers):
    def __init__(self, server: Any) -> None:
        self.server = server
        self.rt = server.runtime
        self.md = self.rt.metadata
        self.files: dict[tuple[int, int], FileState] = {}
        self.opens: dict[bytes, Open] = {}
        self.ids = itertools.count(1)
        self.notify = NotifyHub()
        self.md.listeners.append(self.notify.changed)
        self.table = {
            Command.TREE_CONNECT: self.tree_connect, Command.TREE_DISCONNECT: self.tree_disconnect,
            Command.CREATE: self.create, Command.CLOSE: self.close, Command.FLUSH: self.flush,
            Command.READ: self.read, Command.WRITE: self.write, Command.LOCK: self.lock,
            Command.IOCTL: self.ioctl, Command.QUERY_DIRECTORY: self.query_directory,
            Command.CHANGE_NOTIFY: self.change_notify, Command.QUERY_INFO: self.query_info,
            Command.SET_INFO: self.set_info, Command.OPLOCK_BREAK: self.oplock_break,
        }

    def close_adapter(self) -> None:
        if self.notify.changed in self.md.listeners:
            self.md.listeners.remove(self.notify.changed)

    # -- helpers ----------------------------------------------------------------------

    def smb_shares(self) -> dict[str, Any]:
        return {smb_name(s.name).lower(): s for s in self.rt.shares}

    def share_infos(self) -> list[ShareInfo]:
        out = [ShareInfo(smb_name(s.name), STYPE_DISKTREE, s.name) for s in self.rt.shares]
        return out + [ShareInfo("IPC$", STYPE_IPC_SPECIAL, "IPC Service")]

    def open_of(self, ctx: Context, fid: bytes) -> Open:
        if fid == b"\xff" * 16:
            if ctx.prev_file is None:
                raise SmbError(Status(ctx.prev_status) if ctx.prev_status else
                               Status.INVALID_PARAMETER, "related request without a file")
            fid = ctx.prev_file
        op = self.opens.get(bytes(fid))
        if op is None or op.session is not ctx.session:
            raise SmbError(Status.FILE_CLOSED)
        if op.tree is not ctx.tree:
            raise SmbError(Status.INVALID_PARAMETER, "file of another tree")
        return op

    def _maximal(self, tree: Tree, rec: FileRecord) -> int:
        ident = tree.ident
        bits = granted(ident, rec)
        m = READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE | DELETE
        if bits & R:
            m |= READ_DATA | READ_EA
        if bits & W:
            m |= WRITE_DATA | APPEND_DATA | WRITE_EA | WRITE_ATTRIBUTES
            if rec.ftype == FileType.DIR:
                m |= DELETE_CHILD
        if bits & X:
            m |= EXECUTE
        if ident.uid in (0, rec.uid):
            m |= WRITE_ATTRIBUTES | WRITE_DAC | WRITE_OWNER
        if tree.share.read_only or tree.read_only:
            m &= ~WRITE_BITS
        return m

    async def _walk(self, tree: Tree, parts: list[str]) -> tuple[int, FileRecord | None]:
        """(parent directory id, leaf or None) for a path from the share root; the empty
        path is the root itself."""
        share = tree.share
        if not parts:
            return share.root_id, await self.md.getattr(share, share.root_id)
        try:
            return await self.md.walk(share, tree.ident, share.root_id,
                                      [encode_name(p) for p in parts])
        except (E.NotFound, E.NotDirectory):
            raise SmbError(Status.OBJECT_PATH_NOT_FOUND) from None

    # -- TREE_CONNECT / TREE_DISCONNECT -------------------------------------------------

    async def tree_connect(self, ctx: Context) -> Reply:
        path = M.parse_tree_connect(ctx.raw)
        name = path.rsplit("\\", 1)[-1]
        s = ctx.session
        if name.upper() == "IPC$":
            tree = Tree(next(s.tree_ids), None, None, "IPC$")
            s.trees[tree.id] = tree
            ctx.tree_id = tree.id
            return Reply(Status.SUCCESS, M.tree_connect_response(2, 0, 0, 0x001F01FF))
        share = self.smb_shares().get(name.lower())
        if share is None:
            raise SmbError(Status.BAD_NETWORK_NAME, name)
        if not share.client_allowed(ctx.conn.peer[0]):
            raise SmbError(Status.ACCESS_DENIED, "client address not allowed")
        level = "read-write"
        if s.anonymous:
            if not share.guest_ok:
                raise SmbError(Status.ACCESS_DENIED, "guest access not allowed")
            ident = share.anonymous()
            if share.acl is not None:
                level = "none"
        else:
            u = s.user
            ident = share.identity(u.uid, u.gid, u.gids)
            level = share.level(u.uid, u.gid, u.gids)
        if level == "none":
            raise SmbError(Status.ACCESS_DENIED, f"no permission on share {name}")
        signed = share.smb_signing_required
        if signed and not ctx.signed:
            raise SmbError(Status.ACCESS_DENIED, f"share {name} requires signed requests")
        tree = Tree(next(s.tree_ids), share, ident, name, signed, level == "read")
        root = await self.md.getattr(share, share.root_id)
        s.trees[tree.id] = tree
        ctx.tree_id = tree.id
        return Reply(Status.SUCCESS, M.tree_connect_response(1, 0, 0, self._maximal(tree, root)))

    async def tree_disconnect(self, ctx: Context) -> Reply:
        M.parse_simple(ctx.raw, "TREE_DISCONNECT")
        tree = ctx.tree
        for op in [o for o in self.opens.values() if o.tree is tree]:
            await self._close_open(op)
        ctx.session.trees.pop(tree.id, None)
        return Reply(Status.SUCCESS, M.simple_response())

    async def session_closed(self, session: Any) -> None:
        for op in [o for o in self.opens.values() if o.session is session]:
            try:
                await self._close_open(op)
            except Exception:
                log.failure("smb: closing an open at logoff")
        session.trees.clear()

    # -- CREATE ------------------------------------------------------------------------

    def _new_open(self, ctx: Context, **kw: Any) -> Open:
        n = next(self.ids)
        op = Open(n, n, ctx.session, ctx.tree, **kw)
        self.opens[op.key] = op
        ctx.new_file = op.key
        return op

    async def create(self, ctx: Context) -> Reply:
        req = M.parse_create(ctx.raw)
        tree = ctx.tree
        if req.disposition > OVERWRITE_IF:
            raise SmbError(Status.INVALID_PARAMETER, "disposition")
        if req.options & DIRECTORY_FILE and req.options & NON_DIRECTORY_FILE:
            raise SmbError(Status.INVALID_PARAMETER, "directory and non-directory")
        access = map_generic(req.desired_access)
        if tree.ipc:
            return self._create_pipe(ctx, req.name)
        if req.options & DELETE_ON_CLOSE and not access & (DELETE | MAXIMUM_ALLOWED):
            raise SmbError(Status.INVALID_PARAMETER, "delete-on-close without DELETE")
        share = tree.share
        parts = split_path(req.name)
        parent_id, rec = await self._walk(tree, parts)
        action = OPENED
        want_dir = bool(req.options & DIRECTORY_FILE)
        if rec is not None and parts:
            if req.disposition == CREATE:
                raise SmbError(Status.OBJECT_NAME_COLLISION)
            state = self.files.get((share.sid, rec.fileid))
            if state is not None and state.delete_pending:
                raise SmbError(Status.DELETE_PENDING)
        if rec is not None:
            if want_dir and rec.ftype != FileType.DIR:
                raise SmbError(Status.NOT_A_DIRECTORY)
            if req.options & NON_DIRECTORY_FILE and rec.ftype == FileType.DIR:
                raise SmbError(Status.FILE_IS_A_DIRECTORY)
            maximal = self._maximal(tree, rec)
            if access & MAXIMUM_ALLOWED:
                access = (access & ~MAXIMUM_ALLOWED) | maximal
            if access & ~maximal & ~ACCESS_SYSTEM_SECURITY:
                raise SmbError(Status.ACCESS_DENIED, f"wanted {access:#x}, may {maximal:#x}")
            if req.disposition in (SUPERSEDE, OVERWRITE, OVERWRITE_IF):
                if rec.ftype == FileType.DIR:
                    raise SmbError(Status.INVALID_PARAMETER, "overwrite of a directory")
                if not maximal & WRITE_DATA:
                    raise SmbError(Status.ACCESS_DENIED)
                self._check_share_modes(share, rec.fileid, access | WRITE_DATA,
                                        req.share_access)
                pre, rec = await self.md.setattr(share, tree.ident, rec.fileid, SetAttrs(size=0))
                if pre.size:
                    await share.payload.truncate(share.content_id(rec.fileid), 0,
                                                 share.synchronous)
                action = SUPERSEDED if req.disposition == SUPERSEDE else OVERWRITTEN
        else:
            if req.disposition in (OPEN, OVERWRITE):
                raise SmbError(Status.OBJECT_NAME_NOT_FOUND)
            if tree.read_only:
                raise SmbError(Status.ACCESS_DENIED, "read permission only")
            ftype = FileType.DIR if want_dir else FileType.REG
            mode = 0o755 if want_dir else 0o644
            if req.file_attributes & FI.ATTR_READONLY:
                mode &= ~0o222
            name = encode_name(parts[-1])
            logged = share.logs_creates(ftype)
            made = await self.md.create(share, tree.ident, parent_id, name, ftype,
                                        SetAttrs(mode=mode), durable=False if logged else None)
            if logged:  # durable with the next FLUSH or background sync (not synced here)
                await share.finish_create(parent_id, name, made, sync=False)
            rec = made.file
            action = CREATED
            maximal = self._maximal(tree, rec) | (FILE_ALL_ACCESS & ~WRITE_BITS if
                                                  share.read_only else FILE_ALL_ACCESS)
            if access & MAXIMUM_ALLOWED:
                access = (access & ~MAXIMUM_ALLOWED) | maximal
        key = (share.sid, rec.fileid)
        self._check_share_modes(share, rec.fileid, access, req.share_access)
        state = self.files.get(key)
        if state is None:
            state = self.files[key] = FileState()
        op = self._new_open(ctx, fileid=rec.fileid, is_dir=rec.ftype == FileType.DIR,
                            parent=parent_id, leaf=encode_name(parts[-1]) if parts else b"",
                            path="\\" + "\\".join(parts), access=access,
                            share_access=req.share_access, state=state)
        state.opens.append(op)
        if req.options & DELETE_ON_CLOSE:
            if rec.ftype == FileType.DIR and action != CREATED:
                await self._check_empty(share, tree, rec)
            op.delete_on_close = True
        contexts = []
        if b"MxAc" in req.contexts:
            contexts.append((b"MxAc", struct.pack("<II", 0, self._maximal(tree, rec))))
        if b"QFid" in req.contexts:
            contexts.append((b"QFid", struct.pack("<QQ", rec.fileid, share.sid) + bytes(16)))
        return Reply(Status.SUCCESS, M.create_response(
            action, FI.times(rec), FI.allocation(rec), 0 if op.is_dir else rec.size,
            FI.attributes(rec), op.key, M.create_contexts(contexts)))

    def _create_pipe(self, ctx: Context, name: str) -> Reply:
        pipe = name.lower().replace("\\pipe\\", "").lstrip("\\")
        if pipe != "srvsvc":
            raise SmbError(Status.OBJECT_NAME_NOT_FOUND, name)
        op = self._new_open(ctx, pipe=SrvsvcPipe(self.share_infos), access=FILE_ALL_ACCESS,
                            path=name)
        return Reply(Status.SUCCESS, M.create_response(OPENED, (0, 0, 0, 0), 4096, 0,
                                                       FI.ATTR_NORMAL, op.key, b""))

    def _check_share_modes(self, share: Any, fileid: int, access: int, share_access: int) -> None:
        state = self.files.get((share.sid, fileid))
        if state is None or not access & DATA_ACCESS:
            return
        for other in state.opens:
            oa = other.access
            if not oa & DATA_ACCESS:
                continue
            if (access & (READ_DATA | EXECUTE) and not other.share_access & SHARE_READ) or \
                    (access & (WRITE_DATA | APPEND_DATA) and not other.share_access & SHARE_WRITE) \
                    or (access & DELETE and not other.share_access & SHARE_DELETE) or \
                    (oa & (READ_DATA | EXECUTE) and not share_access & SHARE_READ) or \
                    (oa & (WRITE_DATA | APPEND_DATA) and not share_access & SHARE_WRITE) or \
                    (oa & DELETE and not share_access & SHARE_DELETE):
                raise SmbError(Status.SHARING_VIOLATION)

    async def _check_empty(self, share: Any, tree: Tree, rec: FileRecord) -> None:
        _, entries, _ = await self.md.readdir(share, tree.ident, rec.fileid, 2, 1, plus=False)
        if entries:
            raise SmbError(Status.DIRECTORY_NOT_EMPTY)

    # -- CLOSE ---------------------------------------------------------------------------

    async def close(self, ctx: Context) -> Reply:
        flags, fid = M.parse_close(ctx.raw)
        op = self.open_of(ctx, fid)
        rec = None
        if flags & CLOSE_POSTQUERY_ATTRIB and op.pipe is None:
            try:
                rec = await self.md.getattr(op.tree.share, op.fileid)
            except E.Stale:
                rec = None
        await self._close_open(op)
        if rec is None:
            return Reply(Status.SUCCESS, M.close_response(0))
        return Reply(Status.SUCCESS, M.close_response(
            CLOSE_POSTQUERY_ATTRIB, FI.times(rec), FI.allocation(rec),
            0 if op.is_dir else rec.size, FI.attributes(rec)))

    async def _close_open(self, op: Open) -> None:
        if self.opens.pop(op.key, None) is None:
            return
        if op.watch is not None:
            self.notify.remove(op)
            if op.watch.waiter is not None:
                d, op.watch.waiter = op.watch.waiter, None
                d.callback(Reply(NOTIFY_CLEANUP, M.buffer_response(b"")))
        state = op.state
        if state is None:
            return
        key = (op.tree.share.sid, op.fileid)
        state.opens.remove(op)
        if state.locks:
            state.locks = [lk for lk in state.locks if lk.open is not op]
            self._retry_waiters(state)
        if op.delete_on_close:
            state.delete_pending = True
        if state.opens:
            return
        self.files.pop(key, None)
        if state.delete_pending:
            share = op.tree.share
            try:
                gone = await self.md.remove(share, op.tree.ident, op.parent, op.leaf, op.is_dir,
                                            durable=False)
                await share.finish_unlink(gone.victim if gone.freed else None, op.parent,
                                          op.leaf, sync=False)
            except E.MetadataError as e:
                log.info("smb: delete on close of {path} failed: {err}", path=op.path, err=e)

    # -- READ / WRITE / FLUSH -------------------------------------------------------------

    def _check_locks(self, op: Open, offset: int, length: int, write: bool) -> None:
        state = op.state
        if state is None or not state.locks:
            return
        for lk in state.locks:
            if lk.open is not op and lk.overlaps(offset, length) and (write or lk.exclusive):
                raise SmbError(Status.FILE_LOCK_CONFLICT)

    async def read(self, ctx: Context) -> Reply:
        req = M.parse_read(ctx.raw)
        op = self.open_of(ctx, req.file_id)
        if req.length > ctx.conn.max_io:
            raise SmbError(Status.INVALID_PARAMETER, "read larger than MaxReadSize")
        if op.pipe is not None:
            data = op.pipe.read(req.length)
            if not data:
                raise SmbError(Status.STATUS_PIPE_EMPTY)
            return Reply(Status.SUCCESS, [M.read_response_head(len(data)), data])
        if not op.access & (READ_DATA | EXECUTE):
            raise SmbError(Status.ACCESS_DENIED)
        if op.is_dir:
            raise SmbError(Status.INVALID_DEVICE_REQUEST)
        share = op.tree.share
        rec = await self.md.prepare_read(share, op.tree.ident, op.fileid)
        if req.offset >= rec.size:
            if req.length == 0 and req.minimum == 0:
                return Reply(Status.SUCCESS, [M.read_response_head(0), b""])
            raise SmbError(Status.END_OF_FILE)
        n = min(req.length, rec.size - req.offset)
        if n < req.minimum:
            raise SmbError(Status.END_OF_FILE)
        self._check_locks(op, req.offset, n, False)
        data = await share.payload.read_at(share.content_id(op.fileid), req.offset, n)
        op.position = req.offset + n
        self.server.count_bytes(share, "read", n)
        return Reply(Status.SUCCESS, [M.read_response_head(len(data)), data])

    async def write(self, ctx: Context) -> Reply:
        req = M.parse_write(ctx.raw)
        op = self.open_of(ctx, req.file_id)
        n = len(req.data)
        if n > ctx.conn.max_io:
            raise SmbError(Status.INVALID_PARAMETER, "write larger than MaxWriteSize")
        if op.pipe is not None:
            try:
                op.pipe.write(bytes(req.data))
            except ValueError as e:
                log.info("smb: srvsvc: {err}", err=e)
                raise SmbError(Status.INVALID_PARAMETER) from None
            return Reply(Status.SUCCESS, M.write_response(n))
        if op.is_dir:
            raise SmbError(Status.INVALID_DEVICE_REQUEST)
        share = op.tree.share
        offset = req.offset
        if offset == 0xFFFFFFFFFFFFFFFF:
            if not op.access & APPEND_DATA:
                raise SmbError(Status.ACCESS_DENIED)
            offset = (await self.md.getattr(share, op.fileid)).size
        elif not op.access & WRITE_DATA:
            raise SmbError(Status.ACCESS_DENIED)
        if offset + n > (1 << 63) - 1:
            raise SmbError(Status.INVALID_PARAMETER)
        self._check_locks(op, offset, n, True)
        await self.md.prepare_write(share, op.tree.ident, op.fileid)
        cid = share.content_id(op.fileid)
        # Without WRITE_THROUGH the write is acknowledged once in the WAL and the cache
        # (a process crash loses nothing); FLUSH, or WRITE_THROUGH, makes it durable.
        sync = bool(req.flags & WRITE_THROUGH_FLAG) and share.synchronous
        await share.payload.write_at(cid, offset, req.data, sync)
        if sync and share.durability == "remote":
            await share.payload.flush(cid, True)
        await self.md.commit_write(share, op.fileid, offset + n, durable=sync)
        op.position = offset + n
        self.server.count_bytes(share, "written", n)
        return Reply(Status.SUCCESS, M.write_response(n))

    async def flush(self, ctx: Context) -> Reply:
        op = self.open_of(ctx, M.parse_flush(ctx.raw))
        if op.pipe is None:
            if op.is_dir:
                await op.tree.share.flush_namespace()
            else:
                await op.tree.share.flush(op.fileid)
        return Reply(Status.SUCCESS, M.simple_response())

    # -- LOCK --------------------------------------------------------------------------

    async def lock(self, ctx: Context) -> Reply | Pending:
        fid, elements = M.parse_lock(ctx.raw)
        op = self.open_of(ctx, fid)
        if op.pipe is not None or op.is_dir or op.state is None:
            raise SmbError(Status.INVALID_PARAMETER)
        state = op.state
        unlock = [e for e in elements if e[2] & M.LOCK_UNLOCK]
        if unlock:
            if len(unlock) != len(elements):
                raise SmbError(Status.INVALID_PARAMETER, "mixed lock and unlock")
            for offset, length, _ in elements:
                for lk in state.locks:
                    if lk.open is op and lk.offset == offset and lk.length == length:
                        state.locks.remove(lk)
                        break
                else:
                    raise SmbError(Status.RANGE_NOT_LOCKED)
            self._retry_waiters(state)
            return Reply(Status.SUCCESS, M.simple_response())
        wanted = []
        for offset, length, flags in elements:
            excl = bool(flags & M.LOCK_EXCLUSIVE)
            if bool(flags & M.LOCK_SHARED) == excl:
                raise SmbError(Status.INVALID_PARAMETER, "lock flags")
            if length and offset + length - 1 > 0xFFFFFFFFFFFFFFFF:
                raise SmbError(Status.INVALID_PARAMETER, "lock range wraps")
            wanted.append(Lock(op, offset, length, excl))
        fail_now = all(f & M.LOCK_FAIL_IMMEDIATELY for _, _, f in elements)

        def conflicts() -> bool:
            for w in wanted:
                for lk in state.locks:
                    if lk.overlaps(w.offset, w.length) and (w.exclusive or lk.exclusive) and \
                            not (lk.open is op and not w.exclusive and not lk.exclusive):
                        return True
            return False

        if not conflicts():
            state.locks.extend(wanted)
            return Reply(Status.SUCCESS, M.simple_response())
        if fail_now or len(wanted) > 1:
            raise SmbError(Status.LOCK_NOT_GRANTED)
        d: defer.Deferred = defer.Deferred()

        def retry() -> bool:
            if op.key not in self.opens:
                d.callback(Reply(Status.FILE_CLOSED, M.error_body()))
                return True
            if conflicts():
                return False
            state.locks.extend(wanted)
            d.callback(Reply(Status.SUCCESS, M.simple_response()))
            return True

        def cancel() -> None:
            if retry in state.waiters:
                state.waiters.remove(retry)
                d.callback(Reply(Status.CANCELLED, M.error_body()))

        state.waiters.append(retry)
        return Pending(d, cancel)

    @staticmethod
    def _retry_waiters(state: FileState) -> None:
        for w in list(state.waiters):
            if w():
                state.waiters.remove(w)

    # -- IOCTL --------------------------------------------------------------------------

    async def ioctl(self, ctx: Context) -> Reply:
        req = M.parse_ioctl(ctx.raw)
        code = req.ctl_code
        if not req.flags & SMB2_0_IOCTL_IS_FSCTL:
            raise SmbError(Status.NOT_SUPPORTED, "IOCTL that is not an FSCTL")
        if code == FSCTL_VALIDATE_NEGOTIATE_INFO:
            return self._validate_negotiate(ctx, req)
        if code == FSCTL_QUERY_NETWORK_INTERFACE_INFO:
            return Reply(Status.SUCCESS, M.ioctl_response(code, req.file_id,
                                                          self._interfaces(ctx)))
        if code in (FSCTL_DFS_GET_REFERRALS, FSCTL_DFS_GET_REFERRALS_EX):
            raise SmbError(Status.NOT_FOUND, "no DFS")
        if code == FSCTL_PIPE_TRANSCEIVE:
            op = self.open_of(ctx, req.file_id)
            if op.pipe is None:
                raise SmbError(Status.INVALID_DEVICE_REQUEST)
            try:
                op.pipe.write(req.input)
            except ValueError as e:
                log.info("smb: srvsvc: {err}", err=e)
                raise SmbError(Status.INVALID_PARAMETER) from None
            out = op.pipe.read(req.max_output)
            status = Status.BUFFER_OVERFLOW if op.pipe.out else Status.SUCCESS
            return Reply(status, M.ioctl_response(code, req.file_id, out))
        op = self.open_of(ctx, req.file_id)
        if op.pipe is not None:
            raise SmbError(Status.INVALID_DEVICE_REQUEST)
        if code == FSCTL_GET_REPARSE_POINT:
            raise SmbError(Status.NOT_A_REPARSE_POINT)
        if code == FSCTL_SET_SPARSE:
            return Reply(Status.SUCCESS, M.ioctl_response(code, req.file_id, b""))
        if code == FSCTL_QUERY_ALLOCATED_RANGES:
            if len(req.input) < 16:
                raise SmbError(Status.INVALID_PARAMETER)
            off, length = struct.unpack_from("<QQ", req.input)
            rec = await self.md.getattr(op.tree.share, op.fileid)
            end = min(off + length, rec.size)
            out = struct.pack("<QQ", off, end - off) if end > off else b""
            if len(out) > req.max_output:
                raise SmbError(Status.BUFFER_TOO_SMALL)
            return Reply(Status.SUCCESS, M.ioctl_response(code, req.file_id, out))
        raise SmbError(Status.INVALID_DEVICE_REQUEST, f"FSCTL {code:#x}")

    def _validate_negotiate(self, ctx: Context, req: M.IoctlRequest) -> Reply:
        conn = ctx.conn
        data = req.input
        if len(data) < 24:
            raise SmbError(Status.INVALID_PARAMETER)
        caps, guid, mode, count = struct.unpack_from("<I16sHH", data)
        dialects = list(struct.unpack_from(f"<{count}H", data, 24)) if \
            len(data) >= 24 + 2 * count else None
        if (caps != conn.client_capabilities or guid != conn.client_guid
                or mode != conn.client_security_mode or dialects != conn.client_dialects):
            log.warn("smb: VALIDATE_NEGOTIATE_INFO from {peer} does not match its NEGOTIATE; "
                     "closing", peer=conn.peer[0])
            conn.abort()
            raise SmbError(Status.ACCESS_DENIED)
        from dittofs.smb.connection import CAP_LARGE_MTU, SIGNING_ENABLED, SIGNING_REQUIRED
        our_mode = SIGNING_ENABLED | (SIGNING_REQUIRED if self.server.signing_required else 0)
        our_caps = CAP_LARGE_MTU if conn.dialect >= 0x0210 else 0
        out = struct.pack("<I16sHH", our_caps, self.server.guid, our_mode, conn.dialect)
        ctx.sign_reply = True
        return Reply(Status.SUCCESS, M.ioctl_response(req.ctl_code, req.file_id, out))

    def _interfaces(self, ctx: Context) -> bytes:
        import ipaddress
        host = ctx.conn.local[0]
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = ipaddress.ip_address("127.0.0.1")
        if addr.version == 4:
            sock = struct.pack("<HH4s", 0x2, 0, addr.packed).ljust(128, b"\0")
        else:
            sock = struct.pack("<HHI16sI", 0x17, 0, 0, addr.packed, 0).ljust(128, b"\0")
        return struct.pack("<IIIIQ", 0, 1, 0, 0, 10_000_000_000) + sock
