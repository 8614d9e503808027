"""XDR descriptions of the NFSv3 basic data types (RFC 1813 section 2.5-2.6).

Each structure is a NamedTuple class plus its ``*_T`` XDR type.  ``Fattr3`` and
``WccAttr3`` are flattened (times and specdata inline) so they pack in one call.
"""

from __future__ import annotations

from dittofs.nfs.const import FHSIZE3, NFS3_COOKIEVERFSIZE, TimeHow
from dittofs.rpc.xdr import (
    U32,
    U64,
    VOID,
    Enum,
    FixedOpaque,
    Opaque,
    Optional,
    String,
    Union,
    struct_type,
)

#: Names longer than NAME_MAX decode and are refused with NAMETOOLONG, not as garbage.
FILENAME_T = String(4096)
PATH_T = String(4096)
FH_T = Opaque(FHSIZE3)
COOKIEVERF_T = FixedOpaque(NFS3_COOKIEVERFSIZE)
WRITEVERF_T = FixedOpaque(8)
CREATEVERF_T = FixedOpaque(8)

NfsTime3, NFSTIME3_T = struct_type("NfsTime3", [("seconds", U32), ("nseconds", U32)])
SpecData3, SPECDATA3_T = struct_type("SpecData3", [("specdata1", U32), ("specdata2", U32)])

# fattr3 (RFC 1813 2.6), flattened: rdev, atime, mtime, ctime inline.
Fattr3, FATTR3_T = struct_type("Fattr3", [
    ("type", U32), ("mode", U32), ("nlink", U32), ("uid", U32), ("gid", U32),
    ("size", U64), ("used", U64), ("rdev_major", U32), ("rdev_minor", U32),
    ("fsid", U64), ("fileid", U64),
    ("atime_s", U32), ("atime_ns", U32), ("mtime_s", U32), ("mtime_ns", U32),
    ("ctime_s", U32), ("ctime_ns", U32),
])
POST_OP_ATTR_T = Optional(FATTR3_T)

# wcc_attr (RFC 1813 2.6), flattened.
WccAttr3, WCC_ATTR_T = struct_type("WccAttr3", [
    ("size", U64), ("mtime_s", U32), ("mtime_ns", U32), ("ctime_s", U32), ("ctime_ns", U32),
])
PRE_OP_ATTR_T = Optional(WCC_ATTR_T)
WccData, WCC_DATA_T = struct_type("WccData", [("before", PRE_OP_ATTR_T), ("after", POST_OP_ATTR_T)])
POST_OP_FH_T = Optional(FH_T)

SET_TIME_T = Union(Enum(TimeHow), {
    TimeHow.DONT_CHANGE: VOID, TimeHow.SET_TO_SERVER_TIME: VOID,
    TimeHow.SET_TO_CLIENT_TIME: NFSTIME3_T,
}, name="set_time")

# sattr3: set_mode3 etc. are bool-discriminated unions, which encode exactly as Optional.
Sattr3, SATTR3_T = struct_type("Sattr3", [
    ("mode", Optional(U32)), ("uid", Optional(U32)), ("gid", Optional(U32)),
    ("size", Optional(U64)), ("atime", SET_TIME_T), ("mtime", SET_TIME_T),
])
EMPTY_SATTR = Sattr3(None, None, None, None, (TimeHow.DONT_CHANGE, None),
                     (TimeHow.DONT_CHANGE, None))

DirOpArgs3, DIROPARGS3_T = struct_type("DirOpArgs3", [("dir", FH_T), ("name", FILENAME_T)])
