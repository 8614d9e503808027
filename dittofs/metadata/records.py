"""Binary encoding of FileRecord for key-value stores (pure).

Layout (big-endian): fileid Q, ftype B, has-verifier B, mode I, nlink I, uid I, gid I,
size Q, rdev II, atime q, mtime q, ctime q, parent Q, verifier 8s, then the symlink
target to the end.  Version byte first so the format can change.
"""

from __future__ import annotations

import functools
import struct

from dittofs.metadata.types import FileRecord

VERSION = 1
_FIXED = struct.Struct(">BQBBIIIIQIIqqqQ8s")


def pack_record(r: FileRecord) -> bytes:
    verf = r.verifier
    return _FIXED.pack(VERSION, r.fileid, r.ftype, verf is not None, r.mode, r.nlink, r.uid,
                       r.gid, r.size, r.rdev[0], r.rdev[1], r.atime, r.mtime, r.ctime, r.parent,
                       verf or bytes(8)) + r.target


#: How many decoded records are kept (see unpack_record).
_DECODED_MAX = 16384


@functools.lru_cache(maxsize=_DECODED_MAX)
def unpack_record(b: bytes) -> FileRecord:
    """Decode a record.  Memoised by the encoded bytes: the same bytes always decode to the
    same (immutable) record, so hot files (directories on every LOOKUP, a file being
    statted) are decoded once."""
    (version, fileid, ftype, has_verf, mode, nlink, uid, gid, size, maj, mnr, atime, mtime,
     ctime, parent, verf) = _FIXED.unpack_from(b, 0)
    if version != VERSION:
        raise ValueError(f"unknown record version {version}")
    return FileRecord(fileid, ftype, mode, nlink, uid, gid, size, (maj, mnr), atime, mtime,
                      ctime, parent, bytes(b[_FIXED.size:]), verf if has_verf else None)
