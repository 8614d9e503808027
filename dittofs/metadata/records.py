"""Binary encoding of FileRecord for key-value stores (pure).

Layout (big-endian): fileid Q, ftype B, has-verifier B, mode I, nlink I, uid I, gid I,
size Q, rdev II, atime q, mtime q, ctime q, parent Q, verifier 8s, then the symlink
target to the end.  Version byte first so the format can change.
"""

from __future__ import annotations

import struct

from dittofs.metadata.types import FileRecord

VERSION = 1
_FIXED = struct.Struct(">BQBBIIIIQIIqqqQ8s")


def pack_record(r: FileRecord) -> bytes:
    verf = r.verifier
    return _FIXED.pack(VERSION, r.fileid, r.ftype, verf is not None, r.mode, r.nlink, r.uid,
                       r.gid, r.size, r.rdev[0], r.rdev[1], r.atime, r.mtime, r.ctime, r.parent,
                       verf or bytes(8)) + r.target


#: Records decoded lately, by their encoded bytes: the same bytes always decode to the same
#: (immutable) record, so hot files (directories on every LOOKUP, a file being statted) are
#: decoded once.  Bounded; cleared when full.  Plain dict operations: safe from any thread.
_decoded: dict[bytes, FileRecord] = {}
_DECODED_MAX = 16384


def unpack_record(b: bytes) -> FileRecord:
    rec = _decoded.get(b)
    if rec is not None:
        return rec
    (version, fileid, ftype, has_verf, mode, nlink, uid, gid, size, maj, mnr, atime, mtime,
     ctime, parent, verf) = _FIXED.unpack_from(b, 0)
    if version != VERSION:
        raise ValueError(f"unknown record version {version}")
    rec = FileRecord(fileid, ftype, mode, nlink, uid, gid, size, (maj, mnr), atime, mtime,
                     ctime, parent, bytes(b[_FIXED.size:]), verf if has_verf else None)
    if len(_decoded) >= _DECODED_MAX:
        _decoded.clear()
    _decoded[bytes(b)] = rec
    return rec
