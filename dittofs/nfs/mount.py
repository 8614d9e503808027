"""MOUNT v3 (RFC 1813 appendix I): MNT, DUMP, UMNT, UMNTALL, EXPORT over the share table."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from dittofs.metadata import errors as E
from dittofs.metadata.service import MetadataService
from dittofs.nfs.const import MNTNAMLEN, MNTPATHLEN, MOUNT_PROGRAM, MOUNT_V3, MountProc, MountStat
from dittofs.nfs.handles import HandleCodec
from dittofs.nfs.types import FH_T
from dittofs.rpc.message import AuthFlavor
from dittofs.rpc.program import CallContext, Procedure, Program
from dittofs.rpc.xdr import I32, VOID, Array, Enum, LinkedList, String, Union, struct_type
from dittofs.runtime.shares import ShareTable

log = Logger(namespace="dittofs.mount")

DIRPATH_T = String(MNTPATHLEN)
NAME_T = String(MNTNAMLEN)
MountOk, MOUNT_OK_T = struct_type("MountOk", [("fhandle", FH_T),
                                              ("auth_flavors", Array(I32, 16))])
MOUNTRES_T = Union(Enum(MountStat, open=True), {MountStat.MNT3_OK: MOUNT_OK_T}, VOID,
                   name="mountres3")
MountBody, MOUNTBODY_T = struct_type("MountBody", [("hostname", NAME_T), ("directory", DIRPATH_T)])
MOUNTLIST_T = LinkedList(MOUNTBODY_T)
ExportNode, EXPORTNODE_T = struct_type("ExportNode", [("dir", DIRPATH_T),
                                                      ("groups", LinkedList(NAME_T))])
EXPORTS_T = LinkedList(EXPORTNODE_T)

_MNT_STATUS = {
    E.NotFound: MountStat.MNT3ERR_NOENT, E.NotDirectory: MountStat.MNT3ERR_NOTDIR,
    E.AccessDenied: MountStat.MNT3ERR_ACCES, E.NameTooLong: MountStat.MNT3ERR_NAMETOOLONG,
    E.InvalidArgument: MountStat.MNT3ERR_INVAL, E.Stale: MountStat.MNT3ERR_NOENT,
}


class MountHandlers:
    def __init__(self, shares: ShareTable, metadata: MetadataService, handles: HandleCodec) -> None:
        self.shares = shares
        self.md = metadata
        self.handles = handles

    async def null(self, args: None, ctx: CallContext) -> None:
        return None

    def _split(self, path: bytes) -> tuple[Any, list[bytes]]:
        """Find the share a path lies in, and the components below its root."""
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            return None, []
        parts = [p for p in text.split("/") if p]
        for i in range(len(parts), 0, -1):
            share = self.shares.by_name.get("/" + "/".join(parts[:i]))
            if share is not None:
                return share, [p.encode() for p in parts[i:]]
        return self.shares.by_name.get("/"), [p.encode() for p in parts]

    async def mnt(self, path: bytes, ctx: CallContext) -> Any:
        share, rest = self._split(path)
        if share is None:
            log.info("MNT {path!r} from {client}: no such export", path=path, client=ctx.client[0])
            return MountStat.MNT3ERR_NOENT, None
        if not share.client_allowed(ctx.client[0]):
            log.info("MNT {path!r} refused for {client}", path=path, client=ctx.client[0])
            return MountStat.MNT3ERR_ACCES, None
        cred = ctx.call.cred
        if share.acl is not None and (cred is None or share.level(
                cred.uid, cred.gid, cred.gids) == "none"):
            log.info("MNT {path!r} refused for {client}: no permission on the share",
                     path=path, client=ctx.client[0])
            return MountStat.MNT3ERR_ACCES, None
        ident = share.anonymous() if cred is None else share.identity(cred.uid, cred.gid,
                                                                      cred.gids)
        fid = share.root_id
        try:
            for name in rest:
                if name in (b".", b".."):
                    return MountStat.MNT3ERR_INVAL, None
                child, _ = await self.md.lookup(share, ident, fid, name)
                fid = child.fileid
            rec = await self.md.getattr(share, fid)
        except E.MetadataError as e:
            return _MNT_STATUS.get(type(e), MountStat.MNT3ERR_IO), None
        if rec.ftype != 2:
            return MountStat.MNT3ERR_NOTDIR, None
        self.shares.mounted(ctx.client[0], path.decode())
        log.info("MNT {path} by {client}", path=path.decode(), client=ctx.client[0])
        return MountStat.MNT3_OK, MountOk(self.handles.make(share.sid, fid),
                                          [int(AuthFlavor.AUTH_SYS), int(AuthFlavor.AUTH_NONE)])

    async def dump(self, args: None, ctx: CallContext) -> Any:
        return [MountBody(h.encode(), p.encode()) for h, p in self.shares.mounts]

    async def umnt(self, path: bytes, ctx: CallContext) -> None:
        self.shares.unmounted(ctx.client[0], path.decode("utf-8", "replace"))

    async def umntall(self, args: None, ctx: CallContext) -> None:
        self.shares.unmounted(ctx.client[0])

    async def export(self, args: None, ctx: CallContext) -> Any:
        out = []
        for share in self.shares:
            groups = [str(n).encode() for n in share.networks]
            if {str(n) for n in share.networks} >= {"0.0.0.0/0"}:
                groups = [b"*"]
            out.append(ExportNode(share.name.encode(), groups))
        return out

    def program(self) -> Program:
        procs = {
            MountProc.NULL: Procedure("NULL", VOID, VOID, self.null),
            MountProc.MNT: Procedure("MNT", DIRPATH_T, MOUNTRES_T, self.mnt),
            MountProc.DUMP: Procedure("DUMP", VOID, MOUNTLIST_T, self.dump),
            MountProc.UMNT: Procedure("UMNT", DIRPATH_T, VOID, self.umnt),
            MountProc.UMNTALL: Procedure("UMNTALL", VOID, VOID, self.umntall),
            MountProc.EXPORT: Procedure("EXPORT", VOID, EXPORTS_T, self.export),
        }
        return Program(MOUNT_PROGRAM, "MOUNT3", {MOUNT_V3: {int(k): v for k, v in procs.items()}})
