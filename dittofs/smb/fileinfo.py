"""File, directory and filesystem information classes (MS-FSCC 2.4, 2.5) and the
security descriptors (MS-DTYP 2.4.6) we derive from Unix owner, group and mode."""

from __future__ import annotations

import struct
from typing import NamedTuple

from dittofs.metadata.types import FileRecord, FileType

ATTR_READONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_NORMAL = 0x80

_EPOCH_DELTA = 116444736000000000


def filetime(ns: int) -> int:
    return max(ns // 100 + _EPOCH_DELTA, 0)


def from_filetime(ft: int) -> int:
    return (ft - _EPOCH_DELTA) * 100


def attributes(rec: FileRecord) -> int:
    if rec.ftype == FileType.DIR:
        a = ATTR_DIRECTORY
    else:
        a = ATTR_ARCHIVE
    if not rec.mode & 0o200:
        a |= ATTR_READONLY
    return a


def times(rec: FileRecord) -> tuple[int, int, int, int]:
    """(creation, last access, last write, change) as FILETIMEs.  We keep no birth time:
    the earliest of the three Unix times stands in for it."""
    return (filetime(min(rec.atime, rec.mtime, rec.ctime)), filetime(rec.atime),
            filetime(rec.mtime), filetime(rec.ctime))


def allocation(rec: FileRecord) -> int:
    return 0 if rec.ftype == FileType.DIR else (rec.size + 4095) & ~4095


# -- file information classes (QUERY_INFO, InfoType FILE) -----------------------------

FILE_DIRECTORY, FILE_FULL_DIRECTORY, FILE_BOTH_DIRECTORY = 1, 2, 3
FILE_BASIC, FILE_STANDARD, FILE_INTERNAL, FILE_EA, FILE_ACCESS, FILE_NAME = 4, 5, 6, 7, 8, 9
FILE_RENAME, FILE_LINK, FILE_NAMES, FILE_DISPOSITION, FILE_POSITION = 10, 11, 12, 13, 14
FILE_FULL_EA, FILE_MODE, FILE_ALIGNMENT, FILE_ALL, FILE_ALLOCATION = 15, 16, 17, 18, 19
FILE_END_OF_FILE, FILE_ALTERNATE_NAME, FILE_STREAM = 20, 21, 22
FILE_COMPRESSION, FILE_NETWORK_OPEN, FILE_ATTRIBUTE_TAG = 28, 34, 35
FILE_ID_BOTH_DIRECTORY, FILE_ID_FULL_DIRECTORY = 37, 38
FILE_NORMALIZED_NAME, FILE_ID_INFORMATION, FILE_DISPOSITION_EX = 48, 59, 64

_BASIC = struct.Struct("<QQQQII")
_STANDARD = struct.Struct("<QQIBBH")
_NETOPEN = struct.Struct("<QQQQQQII")


class OpenView(NamedTuple):
    """What the info classes need to know about an open besides the file's record."""

    access: int
    position: int
    mode: int
    delete_pending: bool
    name: str  # path from the share root, backslash separated, leading backslash
    volume_serial: int


def basic(rec: FileRecord) -> bytes:
    return _BASIC.pack(*times(rec), attributes(rec), 0)


def standard(rec: FileRecord, delete_pending: bool) -> bytes:
    return _STANDARD.pack(allocation(rec), rec.size if rec.ftype != FileType.DIR else 0,
                          rec.nlink, delete_pending, rec.ftype == FileType.DIR, 0)


def network_open(rec: FileRecord) -> bytes:
    return _NETOPEN.pack(*times(rec), allocation(rec),
                         rec.size if rec.ftype != FileType.DIR else 0, attributes(rec), 0)


def name_info(name: str) -> bytes:
    raw = name.encode("utf-16-le", "surrogatepass")
    return struct.pack("<I", len(raw)) + raw


def file_info(cls: int, rec: FileRecord, view: OpenView) -> bytes | None:
    """The bytes of information class ``cls``, or None when we do not answer it."""
    if cls == FILE_BASIC:
        return basic(rec)
    if cls == FILE_STANDARD:
        return standard(rec, view.delete_pending)
    if cls == FILE_INTERNAL:
        return struct.pack("<Q", rec.fileid)
    if cls == FILE_EA:
        return struct.pack("<I", 0)
    if cls == FILE_ACCESS:
        return struct.pack("<I", view.access)
    if cls == FILE_POSITION:
        return struct.pack("<Q", view.position)
    if cls == FILE_MODE:
        return struct.pack("<I", view.mode)
    if cls == FILE_ALIGNMENT:
        return struct.pack("<I", 0)
    if cls in (FILE_NAME, FILE_NORMALIZED_NAME):
        return name_info(view.name if cls == FILE_NAME else view.name.lstrip("\\"))
    if cls == FILE_ALL:
        return (basic(rec) + standard(rec, view.delete_pending)
                + struct.pack("<QIIQII", rec.fileid, 0, view.access, view.position, view.mode, 0)
                + name_info(view.name))
    if cls == FILE_NETWORK_OPEN:
        return network_open(rec)
    if cls == FILE_ATTRIBUTE_TAG:
        return struct.pack("<II", attributes(rec), 0)
    if cls == FILE_STREAM:
        if rec.ftype == FileType.DIR:
            return b""
        raw = "::$DATA".encode("utf-16-le")
        return struct.pack("<IIQQ", 0, len(raw), rec.size, allocation(rec)) + raw
    if cls == FILE_COMPRESSION:
        return struct.pack("<QHBBB3x", rec.size, 0, 0, 0, 0)
    if cls == FILE_ID_INFORMATION:
        return struct.pack("<Q", view.volume_serial) + rec.fileid.to_bytes(16, "little")
    return None


#: Fixed part of each class: a buffer shorter than this is INFO_LENGTH_MISMATCH; a
#: variable part that does not fit is truncated with BUFFER_OVERFLOW.
FIXED_SIZE = {FILE_BASIC: 40, FILE_STANDARD: 24, FILE_INTERNAL: 8, FILE_EA: 4, FILE_ACCESS: 4,
              FILE_POSITION: 8, FILE_MODE: 4, FILE_ALIGNMENT: 4, FILE_NAME: 4,
              FILE_NORMALIZED_NAME: 4, FILE_ALL: 100, FILE_NETWORK_OPEN: 56,
              FILE_ATTRIBUTE_TAG: 8, FILE_STREAM: 0, FILE_COMPRESSION: 16,
              FILE_ID_INFORMATION: 24}


# -- directory entries (QUERY_DIRECTORY) --------------------------------------------

DIRECTORY_CLASSES = (FILE_DIRECTORY, FILE_FULL_DIRECTORY, FILE_BOTH_DIRECTORY, FILE_NAMES,
                     FILE_ID_BOTH_DIRECTORY, FILE_ID_FULL_DIRECTORY)
_DIR_COMMON = struct.Struct("<IIQQQQQQII")  # through FileNameLength


def dir_entry(cls: int, rec: FileRecord, name: str) -> bytes:
    """One entry without padding; NextEntryOffset is filled in by ``pack_entries``."""
    raw = name.encode("utf-16-le", "surrogatepass")
    if cls == FILE_NAMES:
        return struct.pack("<III", 0, 0, len(raw)) + raw
    eof = rec.size if rec.ftype != FileType.DIR else 0
    head = _DIR_COMMON.pack(0, 0, *times(rec), eof, allocation(rec), attributes(rec), len(raw))
    if cls == FILE_DIRECTORY:
        return head + raw
    if cls == FILE_FULL_DIRECTORY:
        return head + b"\0\0\0\0" + raw
    if cls == FILE_ID_FULL_DIRECTORY:
        return head + struct.pack("<IIQ", 0, 0, rec.fileid) + raw
    if cls == FILE_BOTH_DIRECTORY:
        return head + struct.pack("<IBB24s", 0, 0, 0, b"") + raw
    # FILE_ID_BOTH_DIRECTORY
    return head + struct.pack("<IBB24sHQ", 0, 0, 0, b"", 0, rec.fileid) + raw


def pack_entries(entries: list[bytes]) -> bytes:
    out = bytearray()
    for i, e in enumerate(entries):
        start = len(out)
        out += e
        if i < len(entries) - 1:
            out += bytes(-len(e) & 7)
            struct.pack_into("<I", out, start, len(out) - start)
    return bytes(out)


def padded_size(entry: bytes) -> int:
    return len(entry) + (-len(entry) & 7)


# -- filesystem information classes ----------------------------------------------------

FS_VOLUME, FS_SIZE, FS_DEVICE, FS_ATTRIBUTE, FS_FULL_SIZE, FS_OBJECT_ID = 1, 3, 4, 5, 7, 8
FS_SECTOR_SIZE = 11
FS_CASE_SENSITIVE_SEARCH = 0x1
FS_CASE_PRESERVED_NAMES = 0x2
FS_UNICODE_ON_DISK = 0x4
FS_SUPPORTS_SPARSE_FILES = 0x40
FS_PERSISTENT_ACLS = 0x8
_UNIT = 4096


def fs_info(cls: int, label: str, serial: int, created_ns: int, total: int, avail: int) -> \
        bytes | None:
    if cls == FS_VOLUME:
        raw = label.encode("utf-16-le")
        return struct.pack("<QIIBB", filetime(created_ns), serial & 0xFFFFFFFF, len(raw), 0,
                           0) + raw
    if cls == FS_SIZE:
        return struct.pack("<QQII", total // _UNIT, avail // _UNIT, _UNIT // 512, 512)
    if cls == FS_FULL_SIZE:
        return struct.pack("<QQQII", total // _UNIT, avail // _UNIT, avail // _UNIT,
                           _UNIT // 512, 512)
    if cls == FS_DEVICE:
        return struct.pack("<II", 0x07, 0x20)  # FILE_DEVICE_DISK, FILE_DEVICE_IS_MOUNTED
    if cls == FS_ATTRIBUTE:
        raw = "NTFS".encode("utf-16-le")
        flags = (FS_CASE_SENSITIVE_SEARCH | FS_CASE_PRESERVED_NAMES | FS_UNICODE_ON_DISK
                 | FS_PERSISTENT_ACLS | FS_SUPPORTS_SPARSE_FILES)
        return struct.pack("<III", flags, 255, len(raw)) + raw
    if cls == FS_OBJECT_ID:
        return serial.to_bytes(16, "little") + bytes(48)
    if cls == FS_SECTOR_SIZE:
        return struct.pack("<IIIIIII", 512, 512, 512, 512, 0x3, 0, 0)
    return None


FS_FIXED_SIZE = {FS_VOLUME: 18, FS_SIZE: 24, FS_FULL_SIZE: 32, FS_DEVICE: 8, FS_ATTRIBUTE: 12,
                 FS_OBJECT_ID: 64, FS_SECTOR_SIZE: 28}


# -- security descriptors ---------------------------------------------------------------

OWNER_SECURITY_INFORMATION = 0x1
GROUP_SECURITY_INFORMATION = 0x2
DACL_SECURITY_INFORMATION = 0x4
SE_DACL_PRESENT = 0x0004
SE_SELF_RELATIVE = 0x8000
ACCESS_ALLOWED_ACE = 0
_R_MASK = 0x00120089  # FILE_GENERIC_READ
_W_MASK = 0x00120116  # FILE_GENERIC_WRITE
_X_MASK = 0x001200A0  # FILE_GENERIC_EXECUTE


def unix_sid(kind: int, ident: int) -> bytes:
    """S-1-22-1-uid (users) and S-1-22-2-gid (groups): Samba's Unix SIDs."""
    return struct.pack("<BB6sII", 1, 2, (22).to_bytes(6, "big"), kind, ident)


EVERYONE = struct.pack("<BB6sI", 1, 1, (1).to_bytes(6, "big"), 0)


def parse_sid(data: bytes, off: int) -> tuple[str, int]:
    """(textual SID, its length) at ``off``."""
    rev, count = data[off], data[off + 1]
    auth = int.from_bytes(data[off + 2:off + 8], "big")
    subs = struct.unpack_from(f"<{count}I", data, off + 8)
    return f"S-{rev}-{auth}" + "".join(f"-{s}" for s in subs), 8 + 4 * count


def _ace(mask: int, sid: bytes) -> bytes:
    return struct.pack("<BBHI", ACCESS_ALLOWED_ACE, 0, 8 + len(sid), mask) + sid


def _bits_mask(bits: int) -> int:
    m = 0
    if bits & 4:
        m |= _R_MASK
    if bits & 2:
        m |= _W_MASK | 0x40 | 0x10000  # with delete-child and delete
    if bits & 1:
        m |= _X_MASK
    return m


def security_descriptor(rec: FileRecord, which: int) -> bytes:
    owner = unix_sid(1, rec.uid)
    group = unix_sid(2, rec.gid)
    mode = rec.mode
    aces = [_ace(_bits_mask(mode >> 6 & 7) | 0x000C0000, owner),  # owner: + WRITE_DAC/OWNER
            _ace(_bits_mask(mode >> 3 & 7), group), _ace(_bits_mask(mode & 7), EVERYONE)]
    dacl = struct.pack("<BBHHH", 2, 0, 8 + sum(map(len, aces)), len(aces), 0) + b"".join(aces)
    parts = []
    off = 20
    o_owner = o_group = o_dacl = 0
    control = SE_SELF_RELATIVE
    if which & OWNER_SECURITY_INFORMATION:
        o_owner = off
        parts.append(owner)
        off += len(owner)
    if which & GROUP_SECURITY_INFORMATION:
        o_group = off
        parts.append(group)
        off += len(group)
    if which & DACL_SECURITY_INFORMATION:
        o_dacl = off
        parts.append(dacl)
        control |= SE_DACL_PRESENT
    return struct.pack("<BBHIIII", 1, 0, control, o_owner, o_group, 0, o_dacl) + b"".join(parts)


class SecurityChange(NamedTuple):
    uid: int | None
    gid: int | None
    mode: int | None


def parse_security_descriptor(data: bytes, which: int) -> SecurityChange:
    """Owner and group from Unix SIDs; a DACL of allow ACEs for the owner, group and
    Everyone becomes permission bits.  Raises ValueError for what cannot be mapped."""
    if len(data) < 20:
        raise ValueError("security descriptor too short")
    _, _, control, o_owner, o_group, _, o_dacl = struct.unpack_from("<BBHIIII", data)
    uid = gid = mode = None

    def unix(off: int, kind: int) -> int:
        sid, _ = parse_sid(data, off)
        prefix = f"S-1-22-{kind}-"
        if not sid.startswith(prefix):
            raise ValueError(f"{sid} is not a Unix {'user' if kind == 1 else 'group'} SID")
        return int(sid[len(prefix):])

    owner_sid = group_sid = None
    if which & OWNER_SECURITY_INFORMATION and o_owner:
        uid = unix(o_owner, 1)
        owner_sid = parse_sid(data, o_owner)[0]
    if which & GROUP_SECURITY_INFORMATION and o_group:
        gid = unix(o_group, 2)
        group_sid = parse_sid(data, o_group)[0]
    if which & DACL_SECURITY_INFORMATION and control & SE_DACL_PRESENT and o_dacl:
        _, _, _, count, _ = struct.unpack_from("<BBHHH", data, o_dacl)
        off = o_dacl + 8
        mode = 0
        for _ in range(count):
            atype, _, size, mask = struct.unpack_from("<BBHI", data, off)
            sid, _ = parse_sid(data, off + 8)
            bits = ((4 if mask & 0x1 else 0) | (2 if mask & 0x2 else 0)
                    | (1 if mask & 0x20 else 0))
            if atype == ACCESS_ALLOWED_ACE:
                if sid == "S-1-1-0":
                    mode |= bits
                elif sid.startswith("S-1-22-2-") or sid == group_sid:
                    mode |= bits << 3
                elif sid.startswith("S-1-22-1-") or sid == owner_sid:
                    mode |= bits << 6
            off += size
    return SecurityChange(uid, gid, mode)
