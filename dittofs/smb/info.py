"""SMB2 directory listing, change notify and the QUERY_INFO/SET_INFO classes, as a mixin
of ``SmbHandlers`` (it uses the open table and helpers defined there)."""

from __future__ import annotations

import struct

from twisted.internet import defer

from dittofs.metadata import errors as E
from dittofs.metadata.types import FileType, SetAttrs, SetTime
from dittofs.smb import fileinfo as FI
from dittofs.smb import messages as M
from dittofs.smb.connection import Context, Pending, Reply
from dittofs.smb.opens import (
    APPEND_DATA,
    DELETE,
    READ_CONTROL,
    READ_DATA,
    WRITE_ATTRIBUTES,
    WRITE_DAC,
    WRITE_DATA,
    WRITE_OWNER,
    Open,
    Watch,
    compile_pattern,
    encode_name,
    smb_name,
    split_path,
)
from dittofs.smb.status import SmbError, Status


class InfoHandlers:
    # -- QUERY_DIRECTORY -------------------------------------------------------------

    async def query_directory(self, ctx: Context) -> Reply:
        req = M.parse_query_directory(ctx.raw)
        op = self.open_of(ctx, req.file_id)
        if not op.is_dir:
            raise SmbError(Status.INVALID_PARAMETER, "not a directory")
        if req.info_class not in FI.DIRECTORY_CLASSES:
            raise SmbError(Status.INVALID_INFO_CLASS)
        if not op.access & READ_DATA:
            raise SmbError(Status.ACCESS_DENIED)
        first = bool(req.flags & (M.RESTART_SCANS | M.REOPEN)) or not op.listed
        if first:
            op.cursor = 0
            op.ended = False
            op.pattern, op.exact = compile_pattern(req.pattern or "*")
        op.listed = True
        if op.ended:
            raise SmbError(Status.NO_MORE_FILES)
        share = op.tree.share
        single = bool(req.flags & M.RETURN_SINGLE_ENTRY)
        entries: list[bytes] = []
        used = 0
        if op.exact is not None:
            op.ended = True
            try:
                rec, _ = await self.md.lookup(share, op.tree.ident, op.fileid,
                                              encode_name(op.exact))
            except E.NotFound:
                raise SmbError(Status.NO_SUCH_FILE if first else Status.NO_MORE_FILES) from None
            entry = FI.dir_entry(req.info_class, rec, op.exact)
            if len(entry) > req.output_length:
                raise SmbError(Status.INFO_LENGTH_MISMATCH)
            return Reply(Status.SUCCESS, M.buffer_response(FI.pack_entries([entry])))
        full = False
        while not full and not op.ended:
            _, batch, eof = await self.md.readdir(share, op.tree.ident, op.fileid, op.cursor,
                                                  256, plus=True)
            for de, rec in batch:
                name = de.name.decode("utf-8", "surrogateescape")
                if rec is None or (op.pattern is not None and not op.pattern.fullmatch(name)):
                    op.cursor = de.cookie
                    continue
                entry = FI.dir_entry(req.info_class, rec, name)
                size = FI.padded_size(entry)
                if used + len(entry) > req.output_length:
                    full = True
                    break
                entries.append(entry)
                used += size
                op.cursor = de.cookie
                if single:
                    full = True
                    break
            else:
                if eof:
                    op.ended = True
        if not entries:
            if full:
                raise SmbError(Status.INFO_LENGTH_MISMATCH)
            raise SmbError(Status.NO_SUCH_FILE if first else Status.NO_MORE_FILES)
        return Reply(Status.SUCCESS, M.buffer_response(FI.pack_entries(entries)))

    # -- CHANGE_NOTIFY ----------------------------------------------------------------

    async def change_notify(self, ctx: Context) -> Reply | Pending:
        req = M.parse_change_notify(ctx.raw)
        op = self.open_of(ctx, req.file_id)
        if not op.is_dir:
            raise SmbError(Status.INVALID_PARAMETER, "not a directory")
        if op.watch is None:
            op.watch = Watch(req.completion_filter)
            self.notify.add(op)
        w = op.watch
        w.filter = req.completion_filter
        w.max_len = req.output_length
        if w.waiter is not None:
            raise SmbError(Status.INVALID_PARAMETER, "a CHANGE_NOTIFY is already waiting")
        d: defer.Deferred = defer.Deferred()
        w.waiter = d
        if w.events or w.overflow:
            w.flush()
            return await d

        def cancel() -> None:
            if w.waiter is d:
                w.waiter = None
                d.callback(Reply(Status.CANCELLED, M.error_body()))

        return Pending(d, cancel)

    # -- QUERY_INFO / SET_INFO ----------------------------------------------------------

    def _view(self, op: Open) -> FI.OpenView:
        return FI.OpenView(op.access, op.position, op.mode,
                           bool(op.state and op.state.delete_pending) or op.delete_on_close,
                           op.path or "\\", op.tree.share.sid if op.tree.share else 0)

    @staticmethod
    def _fit(data: bytes, fixed: int, limit: int) -> Reply:
        if limit < fixed:
            raise SmbError(Status.INFO_LENGTH_MISMATCH)
        if len(data) > limit:
            return Reply(Status.BUFFER_OVERFLOW, M.buffer_response(data[:limit]))
        return Reply(Status.SUCCESS, M.buffer_response(data))

    async def query_info(self, ctx: Context) -> Reply:
        req = M.parse_query_info(ctx.raw)
        op = self.open_of(ctx, req.file_id)
        if op.pipe is not None:
            if req.info_type == M.INFO_FILE and req.info_class == FI.FILE_STANDARD:
                return self._fit(struct.pack("<QQIBBH", 4096, 0, 1, 1, 0, 0), 24,
                                 req.output_length)
            raise SmbError(Status.INVALID_PARAMETER)
        share = op.tree.share
        rec = await self.md.getattr(share, op.fileid)
        if req.info_type == M.INFO_FILE:
            data = FI.file_info(req.info_class, rec, self._view(op))
            if data is None:
                raise SmbError(Status.INVALID_INFO_CLASS if req.info_class > 75 else
                               Status.NOT_SUPPORTED)
            return self._fit(data, FI.FIXED_SIZE.get(req.info_class, 0), req.output_length)
        if req.info_type == M.INFO_FILESYSTEM:
            st = await self.md.fsstat(share)
            root = await self.md.getattr(share, share.root_id)
            data = FI.fs_info(req.info_class, smb_name(share.name)[:32], share.sid, root.ctime,
                              st.total_bytes, st.avail_bytes)
            if data is None:
                raise SmbError(Status.INVALID_INFO_CLASS if req.info_class > 15 else
                               Status.NOT_SUPPORTED)
            return self._fit(data, FI.FS_FIXED_SIZE.get(req.info_class, 0), req.output_length)
        if req.info_type == M.INFO_SECURITY:
            if not op.access & READ_CONTROL:
                raise SmbError(Status.ACCESS_DENIED)
            sd = FI.security_descriptor(rec, req.additional)
            if len(sd) > req.output_length:
                raise SmbError(Status.BUFFER_TOO_SMALL, data=struct.pack("<I", len(sd)))
            return Reply(Status.SUCCESS, M.buffer_response(sd))
        raise SmbError(Status.NOT_SUPPORTED, f"info type {req.info_type}")

    async def set_info(self, ctx: Context) -> Reply:
        req = M.parse_set_info(ctx.raw)
        op = self.open_of(ctx, req.file_id)
        if op.pipe is not None:
            raise SmbError(Status.INVALID_PARAMETER)
        tree = op.tree
        share = tree.share
        data = req.data
        if req.info_type == M.INFO_SECURITY:
            try:
                ch = FI.parse_security_descriptor(data, req.additional)
            except (ValueError, struct.error, IndexError) as e:
                raise SmbError(Status.INVALID_PARAMETER, str(e)) from None
            if not op.access & (WRITE_DAC | WRITE_OWNER):
                raise SmbError(Status.ACCESS_DENIED)
            mode = None
            if ch.mode is not None:
                rec = await self.md.getattr(share, op.fileid)
                mode = (rec.mode & 0o7000) | ch.mode
            await self.md.setattr(share, tree.ident, op.fileid, SetAttrs(mode=mode, uid=ch.uid,
                                                                         gid=ch.gid))
            return Reply(Status.SUCCESS, M.set_info_response())
        if req.info_type != M.INFO_FILE:
            raise SmbError(Status.NOT_SUPPORTED, f"set info type {req.info_type}")
        cls = req.info_class
        if cls == FI.FILE_BASIC:
            if len(data) < 36:
                raise SmbError(Status.INFO_LENGTH_MISMATCH)
            _, atime, mtime, _, attrs = struct.unpack_from("<qqqqI", data)
            if not op.access & WRITE_ATTRIBUTES:
                raise SmbError(Status.ACCESS_DENIED)
            rec = await self.md.getattr(share, op.fileid)
            mode = None
            if attrs and rec.ftype != FileType.DIR:
                ro = bool(attrs & FI.ATTR_READONLY)
                if ro and rec.mode & 0o222:
                    mode = rec.mode & ~0o222
                elif not ro and not rec.mode & 0o200:
                    mode = rec.mode | 0o200

            def t(ft: int) -> tuple[int, int] | None:
                return None if ft in (0, -1, -2) else (SetTime.CLIENT, FI.from_filetime(ft))
            change = SetAttrs(mode=mode, atime=t(atime), mtime=t(mtime))
            if change != SetAttrs():
                await self.md.setattr(share, tree.ident, op.fileid, change)
            return Reply(Status.SUCCESS, M.set_info_response())
        if cls in (FI.FILE_END_OF_FILE, FI.FILE_ALLOCATION):
            if len(data) < 8:
                raise SmbError(Status.INFO_LENGTH_MISMATCH)
            size = struct.unpack_from("<q", data)[0]
            if size < 0:
                raise SmbError(Status.INVALID_PARAMETER)
            if not op.access & (WRITE_DATA | APPEND_DATA):
                raise SmbError(Status.ACCESS_DENIED)
            if op.is_dir:
                raise SmbError(Status.INVALID_PARAMETER)
            if cls == FI.FILE_ALLOCATION:
                rec = await self.md.getattr(share, op.fileid)
                if size >= rec.size:
                    return Reply(Status.SUCCESS, M.set_info_response())
            pre, post = await self.md.setattr(share, tree.ident, op.fileid, SetAttrs(size=size))
            if pre.size != post.size:
                await share.payload.truncate(share.content_id(op.fileid), post.size,
                                             share.synchronous)
            return Reply(Status.SUCCESS, M.set_info_response())
        if cls in (FI.FILE_DISPOSITION, FI.FILE_DISPOSITION_EX):
            if len(data) < (4 if cls == FI.FILE_DISPOSITION_EX else 1):
                raise SmbError(Status.INFO_LENGTH_MISMATCH)
            delete = bool(data[0] & 1)
            if delete:
                if not op.access & DELETE:
                    raise SmbError(Status.ACCESS_DENIED)
                if share.read_only:
                    raise SmbError(Status.MEDIA_WRITE_PROTECTED)
                rec = await self.md.getattr(share, op.fileid)
                if op.is_dir:
                    await self._check_empty(share, tree, rec)
                elif not rec.mode & 0o222 and cls == FI.FILE_DISPOSITION:
                    raise SmbError(Status.CANNOT_DELETE)
            op.state.delete_pending = delete
            op.delete_on_close = delete
            return Reply(Status.SUCCESS, M.set_info_response())
        if cls in (FI.FILE_RENAME, FI.FILE_LINK):
            return await self._rename_or_link(op, data, cls == FI.FILE_LINK)
        if cls == FI.FILE_POSITION:
            if len(data) < 8:
                raise SmbError(Status.INFO_LENGTH_MISMATCH)
            op.position = struct.unpack_from("<Q", data)[0]
            return Reply(Status.SUCCESS, M.set_info_response())
        if cls == FI.FILE_MODE:
            if len(data) < 4:
                raise SmbError(Status.INFO_LENGTH_MISMATCH)
            op.mode = struct.unpack_from("<I", data)[0]
            return Reply(Status.SUCCESS, M.set_info_response())
        raise SmbError(Status.NOT_SUPPORTED if cls < 76 else Status.INVALID_INFO_CLASS)

    async def _rename_or_link(self, op: Open, data: bytes, link: bool) -> Reply:
        if len(data) < 20:
            raise SmbError(Status.INFO_LENGTH_MISMATCH)
        replace = bool(data[0])
        n = struct.unpack_from("<I", data, 16)[0]
        if 20 + n > len(data) or n % 2:
            raise SmbError(Status.INVALID_PARAMETER)
        target = data[20:20 + n].decode("utf-16-le", "surrogatepass").lstrip("\\")
        parts = split_path(target)
        if not parts:
            raise SmbError(Status.OBJECT_NAME_INVALID)
        tree = op.tree
        share = tree.share
        if not link and not op.access & DELETE:
            raise SmbError(Status.ACCESS_DENIED)
        if not op.leaf:
            raise SmbError(Status.ACCESS_DENIED, "rename of the share root")
        dir_id, existing = await self._walk(tree, parts)  # a directory, or it raised
        name = encode_name(parts[-1])
        if existing is not None and existing.fileid != op.fileid:
            if not replace:
                raise SmbError(Status.OBJECT_NAME_COLLISION)
            st = self.files.get((share.sid, existing.fileid))
            if st is not None and st.opens:
                raise SmbError(Status.ACCESS_DENIED, "target is open")
            if existing.ftype == FileType.DIR:
                raise SmbError(Status.ACCESS_DENIED, "target is a directory")
        if link:
            await self.md.link(share, tree.ident, op.fileid, dir_id, name)
            return Reply(Status.SUCCESS, M.set_info_response())
        r = await self.md.rename(share, tree.ident, op.parent, op.leaf, dir_id, name,
                                 durable=False)
        await share.finish_unlink(r.replaced)
        new_path = "\\" + "\\".join(parts)
        for other in list(op.state.opens) if op.state else [op]:
            other.parent, other.leaf, other.path = dir_id, name, new_path
        return Reply(Status.SUCCESS, M.set_info_response())

    async def oplock_break(self, ctx: Context) -> Reply:
        raise SmbError(Status.INVALID_OPLOCK_PROTOCOL, "no oplock or lease was granted")
