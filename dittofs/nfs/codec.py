"""NFSv3 procedure arguments and results (RFC 1813 section 3.3), as XDR descriptions.

Results are unions on ``nfsstat3``: values are ``(status, body)`` pairs whose body is
the ``*ResOk`` tuple when status is NFS3_OK and the ``*ResFail`` tuple otherwise.
"""

from __future__ import annotations

import struct
from typing import Any

from dittofs.metadata.types import FileType
from dittofs.nfs.const import CreateMode, NfsStat, Proc, StableHow
from dittofs.nfs.types import (
    COOKIEVERF_T,
    CREATEVERF_T,
    DIROPARGS3_T,
    FATTR3_T,
    FH_T,
    FILENAME_T,
    NFSTIME3_T,
    PATH_T,
    POST_OP_ATTR_T,
    POST_OP_FH_T,
    SATTR3_T,
    SPECDATA3_T,
    WCC_DATA_T,
    WRITEVERF_T,
)
from dittofs.rpc.xdr import (
    _PADS,
    BOOL,
    U32,
    U64,
    VOID,
    Enum,
    LinkedList,
    Opaque,
    Optional,
    Packer,
    Union,
    XdrError,
    XdrType,
    struct_type,
)

STATUS_T = Enum(NfsStat, open=True)


def result(name: str, ok: XdrType, fail: XdrType) -> Union:
    return Union(STATUS_T, {NfsStat.NFS3_OK: ok}, fail, name=name)


# 3.3.1 GETATTR
GETATTR_ARGS_T = FH_T
GETATTR_RES_T = result("GETATTR3res", FATTR3_T, VOID)

# 3.3.2 SETATTR
SetattrArgs, SETATTR_ARGS_T = struct_type("SetattrArgs", [
    ("object", FH_T), ("new_attributes", SATTR3_T), ("guard", Optional(NFSTIME3_T))])
SETATTR_RES_T = result("SETATTR3res", WCC_DATA_T, WCC_DATA_T)

# 3.3.3 LOOKUP
LookupOk, LOOKUP_OK_T = struct_type("LookupOk", [
    ("object", FH_T), ("obj_attributes", POST_OP_ATTR_T), ("dir_attributes", POST_OP_ATTR_T)])
LOOKUP_RES_T = result("LOOKUP3res", LOOKUP_OK_T, POST_OP_ATTR_T)

# 3.3.4 ACCESS
AccessArgs, ACCESS_ARGS_T = struct_type("AccessArgs", [("object", FH_T), ("access", U32)])
AccessOk, ACCESS_OK_T = struct_type("AccessOk", [("obj_attributes", POST_OP_ATTR_T),
                                                 ("access", U32)])
ACCESS_RES_T = result("ACCESS3res", ACCESS_OK_T, POST_OP_ATTR_T)

# 3.3.5 READLINK
ReadlinkOk, READLINK_OK_T = struct_type("ReadlinkOk", [("symlink_attributes", POST_OP_ATTR_T),
                                                       ("data", PATH_T)])
READLINK_RES_T = result("READLINK3res", READLINK_OK_T, POST_OP_ATTR_T)

# 3.3.6 READ
ReadArgs, READ_ARGS_T = struct_type("ReadArgs", [("file", FH_T), ("offset", U64), ("count", U32)])
ReadOk, READ_OK_T = struct_type("ReadOk", [("file_attributes", POST_OP_ATTR_T), ("count", U32),
                                           ("eof", BOOL), ("data", Opaque())])
READ_RES_T = result("READ3res", READ_OK_T, POST_OP_ATTR_T)

# 3.3.7 WRITE (the data stays a view into the record: no copy before the cache)
WriteArgs, WRITE_ARGS_T = struct_type("WriteArgs", [
    ("file", FH_T), ("offset", U64), ("count", U32), ("stable", Enum(StableHow)),
    ("data", Opaque(view=True))])
WriteOk, WRITE_OK_T = struct_type("WriteOk", [("file_wcc", WCC_DATA_T), ("count", U32),
                                              ("committed", Enum(StableHow)),
                                              ("verf", WRITEVERF_T)])
WRITE_RES_T = result("WRITE3res", WRITE_OK_T, WCC_DATA_T)

# 3.3.8 CREATE
CREATEHOW_T = Union(Enum(CreateMode), {
    CreateMode.UNCHECKED: SATTR3_T, CreateMode.GUARDED: SATTR3_T,
    CreateMode.EXCLUSIVE: CREATEVERF_T}, name="createhow3")
CreateArgs, CREATE_ARGS_T = struct_type("CreateArgs", [("where", DIROPARGS3_T),
                                                       ("how", CREATEHOW_T)])
CreateOk, CREATE_OK_T = struct_type("CreateOk", [
    ("obj", POST_OP_FH_T), ("obj_attributes", POST_OP_ATTR_T), ("dir_wcc", WCC_DATA_T)])
CREATE_RES_T = result("CREATE3res", CREATE_OK_T, WCC_DATA_T)

# 3.3.9 MKDIR
MkdirArgs, MKDIR_ARGS_T = struct_type("MkdirArgs", [("where", DIROPARGS3_T),
                                                    ("attributes", SATTR3_T)])
MKDIR_RES_T = result("MKDIR3res", CREATE_OK_T, WCC_DATA_T)

# 3.3.10 SYMLINK
SymlinkArgs, SYMLINK_ARGS_T = struct_type("SymlinkArgs", [
    ("where", DIROPARGS3_T), ("symlink_attributes", SATTR3_T), ("symlink_data", PATH_T)])
SYMLINK_RES_T = result("SYMLINK3res", CREATE_OK_T, WCC_DATA_T)

# 3.3.11 MKNOD
DeviceData, DEVICEDATA_T = struct_type("DeviceData", [("dev_attributes", SATTR3_T),
                                                      ("spec", SPECDATA3_T)])
MKNODDATA_T = Union(Enum(FileType), {
    FileType.CHR: DEVICEDATA_T, FileType.BLK: DEVICEDATA_T,
    FileType.SOCK: SATTR3_T, FileType.FIFO: SATTR3_T}, VOID, name="mknoddata3")
MknodArgs, MKNOD_ARGS_T = struct_type("MknodArgs", [("where", DIROPARGS3_T),
                                                    ("what", MKNODDATA_T)])
MKNOD_RES_T = result("MKNOD3res", CREATE_OK_T, WCC_DATA_T)

# 3.3.12 REMOVE, 3.3.13 RMDIR
REMOVE_ARGS_T = DIROPARGS3_T
REMOVE_RES_T = result("REMOVE3res", WCC_DATA_T, WCC_DATA_T)
RMDIR_RES_T = result("RMDIR3res", WCC_DATA_T, WCC_DATA_T)

# 3.3.14 RENAME
RenameArgs, RENAME_ARGS_T = struct_type("RenameArgs", [("from_", DIROPARGS3_T),
                                                       ("to", DIROPARGS3_T)])
RenameWcc, RENAME_WCC_T = struct_type("RenameWcc", [("fromdir_wcc", WCC_DATA_T),
                                                    ("todir_wcc", WCC_DATA_T)])
RENAME_RES_T = result("RENAME3res", RENAME_WCC_T, RENAME_WCC_T)

# 3.3.15 LINK
LinkArgs, LINK_ARGS_T = struct_type("LinkArgs", [("file", FH_T), ("link", DIROPARGS3_T)])
LinkRes, LINK_BODY_T = struct_type("LinkRes", [("file_attributes", POST_OP_ATTR_T),
                                               ("linkdir_wcc", WCC_DATA_T)])
LINK_RES_T = result("LINK3res", LINK_BODY_T, LINK_BODY_T)

# 3.3.16 READDIR
ReaddirArgs, READDIR_ARGS_T = struct_type("ReaddirArgs", [
    ("dir", FH_T), ("cookie", U64), ("cookieverf", COOKIEVERF_T), ("count", U32)])
Entry3, ENTRY3_T = struct_type("Entry3", [("fileid", U64), ("name", FILENAME_T),
                                          ("cookie", U64)])
ReaddirOk, READDIR_OK_T = struct_type("ReaddirOk", [
    ("dir_attributes", POST_OP_ATTR_T), ("cookieverf", COOKIEVERF_T),
    ("entries", LinkedList(ENTRY3_T)), ("eof", BOOL)])
READDIR_RES_T = result("READDIR3res", READDIR_OK_T, POST_OP_ATTR_T)

# 3.3.17 READDIRPLUS
ReaddirplusArgs, READDIRPLUS_ARGS_T = struct_type("ReaddirplusArgs", [
    ("dir", FH_T), ("cookie", U64), ("cookieverf", COOKIEVERF_T), ("dircount", U32),
    ("maxcount", U32)])
EntryPlus3, ENTRYPLUS3_T = struct_type("EntryPlus3", [
    ("fileid", U64), ("name", FILENAME_T), ("cookie", U64),
    ("name_attributes", POST_OP_ATTR_T), ("name_handle", POST_OP_FH_T)])


class EntryPlusList(LinkedList):
    """READDIRPLUS's entry list, the bulk of a listing's reply, packed with three fused
    struct calls per entry instead of a walk through the generic member types: byte for
    byte what LinkedList(ENTRYPLUS3_T) packs, and decoded by it."""

    _head = struct.Struct(">IQI")  # value follows, fileid, name length
    _attrs = struct.Struct(">QI" + FATTR3_T.fmt)  # cookie, attributes follow, fattr3
    _no_attrs = struct.Struct(">QI")  # cookie, no attributes
    _fh = struct.Struct(">II")  # handle follows, handle length

    def __init__(self) -> None:
        super().__init__(ENTRYPLUS3_T)

    def pack(self, p: Packer, v: Any) -> None:
        head, attrs_st, no_attrs, fh_st = self._head, self._attrs, self._no_attrs, self._fh
        name_max, fh_max = FILENAME_T.max, FH_T.max
        out: list = []
        add = out.append
        try:
            for fileid, name, cookie, attrs, fh in v:
                n = len(name)
                if n > name_max:
                    raise XdrError(f"opaque of {n} bytes exceeds {name_max}")
                add(head.pack(1, fileid, n))
                add(name)
                add(_PADS[n & 3])
                add(no_attrs.pack(cookie, 0) if attrs is None
                    else attrs_st.pack(cookie, 1, *attrs))
                if fh is None:
                    add(b"\0\0\0\0")
                else:
                    n = len(fh)
                    if n > fh_max:
                        raise XdrError(f"opaque of {n} bytes exceeds {fh_max}")
                    add(fh_st.pack(1, n))
                    add(fh)
                    add(_PADS[n & 3])
        except struct.error as e:
            raise XdrError(f"EntryPlus3: {e}") from e
        add(b"\0\0\0\0")
        p.buf += b"".join(out)


ReaddirplusOk, READDIRPLUS_OK_T = struct_type("ReaddirplusOk", [
    ("dir_attributes", POST_OP_ATTR_T), ("cookieverf", COOKIEVERF_T),
    ("entries", EntryPlusList()), ("eof", BOOL)])
READDIRPLUS_RES_T = result("READDIRPLUS3res", READDIRPLUS_OK_T, POST_OP_ATTR_T)

# 3.3.18 FSSTAT
FsstatOk, FSSTAT_OK_T = struct_type("FsstatOk", [
    ("obj_attributes", POST_OP_ATTR_T), ("tbytes", U64), ("fbytes", U64), ("abytes", U64),
    ("tfiles", U64), ("ffiles", U64), ("afiles", U64), ("invarsec", U32)])
FSSTAT_RES_T = result("FSSTAT3res", FSSTAT_OK_T, POST_OP_ATTR_T)

# 3.3.19 FSINFO
FsinfoOk, FSINFO_OK_T = struct_type("FsinfoOk", [
    ("obj_attributes", POST_OP_ATTR_T), ("rtmax", U32), ("rtpref", U32), ("rtmult", U32),
    ("wtmax", U32), ("wtpref", U32), ("wtmult", U32), ("dtpref", U32), ("maxfilesize", U64),
    ("time_delta", NFSTIME3_T), ("properties", U32)])
FSINFO_RES_T = result("FSINFO3res", FSINFO_OK_T, POST_OP_ATTR_T)

# 3.3.20 PATHCONF
PathconfOk, PATHCONF_OK_T = struct_type("PathconfOk", [
    ("obj_attributes", POST_OP_ATTR_T), ("linkmax", U32), ("name_max", U32),
    ("no_trunc", BOOL), ("chown_restricted", BOOL), ("case_insensitive", BOOL),
    ("case_preserving", BOOL)])
PATHCONF_RES_T = result("PATHCONF3res", PATHCONF_OK_T, POST_OP_ATTR_T)

# 3.3.21 COMMIT
CommitArgs, COMMIT_ARGS_T = struct_type("CommitArgs", [("file", FH_T), ("offset", U64),
                                                       ("count", U32)])
CommitOk, COMMIT_OK_T = struct_type("CommitOk", [("file_wcc", WCC_DATA_T),
                                                 ("verf", WRITEVERF_T)])
COMMIT_RES_T = result("COMMIT3res", COMMIT_OK_T, WCC_DATA_T)

#: proc -> (arguments, results)
SIGNATURES: dict[Proc, tuple[XdrType, XdrType]] = {
    Proc.NULL: (VOID, VOID),
    Proc.GETATTR: (GETATTR_ARGS_T, GETATTR_RES_T),
    Proc.SETATTR: (SETATTR_ARGS_T, SETATTR_RES_T),
    Proc.LOOKUP: (DIROPARGS3_T, LOOKUP_RES_T),
    Proc.ACCESS: (ACCESS_ARGS_T, ACCESS_RES_T),
    Proc.READLINK: (FH_T, READLINK_RES_T),
    Proc.READ: (READ_ARGS_T, READ_RES_T),
    Proc.WRITE: (WRITE_ARGS_T, WRITE_RES_T),
    Proc.CREATE: (CREATE_ARGS_T, CREATE_RES_T),
    Proc.MKDIR: (MKDIR_ARGS_T, MKDIR_RES_T),
    Proc.SYMLINK: (SYMLINK_ARGS_T, SYMLINK_RES_T),
    Proc.MKNOD: (MKNOD_ARGS_T, MKNOD_RES_T),
    Proc.REMOVE: (REMOVE_ARGS_T, REMOVE_RES_T),
    Proc.RMDIR: (REMOVE_ARGS_T, RMDIR_RES_T),
    Proc.RENAME: (RENAME_ARGS_T, RENAME_RES_T),
    Proc.LINK: (LINK_ARGS_T, LINK_RES_T),
    Proc.READDIR: (READDIR_ARGS_T, READDIR_RES_T),
    Proc.READDIRPLUS: (READDIRPLUS_ARGS_T, READDIRPLUS_RES_T),
    Proc.FSSTAT: (FH_T, FSSTAT_RES_T),
    Proc.FSINFO: (FH_T, FSINFO_RES_T),
    Proc.PATHCONF: (FH_T, PATHCONF_RES_T),
    Proc.COMMIT: (COMMIT_ARGS_T, COMMIT_RES_T),
}
