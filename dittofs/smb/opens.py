"""SMB2 open state shared by every connection: trees, opens, share modes, byte-range
locks, change-notify watches, and the access-mask and path rules CREATE applies."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from dittofs.smb import fileinfo as FI
from dittofs.smb import messages as M
from dittofs.smb.connection import Reply
from dittofs.smb.srvsvc import SrvsvcPipe
from dittofs.smb.status import SmbError, Status

log = Logger(namespace="dittofs.smb")

# Access mask bits (MS-SMB2 2.2.13.1)
READ_DATA, WRITE_DATA, APPEND_DATA, READ_EA, WRITE_EA = 0x1, 0x2, 0x4, 0x8, 0x10
EXECUTE, DELETE_CHILD, READ_ATTRIBUTES, WRITE_ATTRIBUTES = 0x20, 0x40, 0x80, 0x100
DELETE, READ_CONTROL, WRITE_DAC, WRITE_OWNER, SYNCHRONIZE = (0x10000, 0x20000, 0x40000,
                                                               0x80000, 0x100000)
ACCESS_SYSTEM_SECURITY, MAXIMUM_ALLOWED = 0x01000000, 0x02000000
GENERIC_ALL, GENERIC_EXECUTE, GENERIC_WRITE, GENERIC_READ = (0x10000000, 0x20000000,
                                                             0x40000000, 0x80000000)
FILE_ALL_ACCESS = 0x001F01FF
_GENERIC = ((GENERIC_READ, 0x00120089), (GENERIC_WRITE, 0x00120116),
            (GENERIC_EXECUTE, 0x001200A0), (GENERIC_ALL, FILE_ALL_ACCESS))
DATA_ACCESS = READ_DATA | WRITE_DATA | APPEND_DATA | EXECUTE | DELETE
WRITE_BITS = WRITE_DATA | APPEND_DATA | WRITE_EA | WRITE_ATTRIBUTES | DELETE_CHILD | DELETE \
    | WRITE_DAC | WRITE_OWNER

SHARE_READ, SHARE_WRITE, SHARE_DELETE = 1, 2, 4
SUPERSEDE, OPEN, CREATE, OPEN_IF, OVERWRITE, OVERWRITE_IF = range(6)
SUPERSEDED, OPENED, CREATED, OVERWRITTEN = range(4)
DIRECTORY_FILE, NON_DIRECTORY_FILE, DELETE_ON_CLOSE = 0x1, 0x40, 0x1000
WRITE_THROUGH_FLAG = 0x1
CLOSE_POSTQUERY_ATTRIB = 0x1
NOTIFY_CLEANUP = 0x0000010B
NOTIFY_ADDED, NOTIFY_REMOVED, NOTIFY_RENAMED_OLD, NOTIFY_RENAMED_NEW = 1, 2, 4, 5

FSCTL_DFS_GET_REFERRALS = 0x00060194
FSCTL_DFS_GET_REFERRALS_EX = 0x000601B0
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
FSCTL_VALIDATE_NEGOTIATE_INFO = 0x00140204
FSCTL_QUERY_NETWORK_INTERFACE_INFO = 0x001401FC
FSCTL_GET_REPARSE_POINT = 0x000900A8
FSCTL_SET_SPARSE = 0x000900C4
FSCTL_QUERY_ALLOCATED_RANGES = 0x000940CF
SMB2_0_IOCTL_IS_FSCTL = 1

_NS = 1_000_000_000
_FID = struct.Struct("<QQ")


@dataclass
class Tree:
    id: int
    share: Any  # runtime Share, None for IPC$
    ident: Any
    name: str
    signing_required: bool = False
    read_only: bool = False  # a "read" permission from the control plane

    @property
    def ipc(self) -> bool:
        return self.share is None


@dataclass
class Lock:
    open: "Open"
    offset: int
    length: int
    exclusive: bool

    def overlaps(self, offset: int, length: int) -> bool:
        if not self.length or not length:
            return False
        return offset < self.offset + self.length and self.offset < offset + length


@dataclass
class FileState:
    """What every open of one file shares: the opens (share modes), delete-pending, locks."""

    opens: list = field(default_factory=list)
    delete_pending: bool = False
    locks: list = field(default_factory=list)
    waiters: list = field(default_factory=list)  # (retry callable)


@dataclass
class Open:
    persistent: int
    volatile: int
    session: Any
    tree: Tree
    fileid: int = 0
    is_dir: bool = False
    parent: int = 0
    leaf: bytes = b""
    path: str = ""  # from the share root, backslash separated
    access: int = 0
    share_access: int = 0
    delete_on_close: bool = False
    position: int = 0
    mode: int = 0
    pipe: SrvsvcPipe | None = None
    state: FileState | None = None
    # directory enumeration
    cursor: int = 0
    pattern: Any = None
    exact: str | None = None
    listed: bool = False
    ended: bool = False
    # change notify
    watch: Any = None

    @property
    def key(self) -> bytes:
        return _FID.pack(self.persistent, self.volatile)


def compile_pattern(pattern: str) -> tuple[Any, str | None]:
    """A DOS wildcard pattern (MS-FSA 2.1.4.4) as a regex; exact names are returned apart
    so that they can be looked up instead of scanned for."""
    if pattern in ("", "*"):
        return None, None
    if not any(c in pattern for c in "*?<>\""):
        return None, pattern
    out = []
    for c in pattern:
        out.append({"*": ".*", "?": ".", "<": ".*", ">": ".?", '"': "\\."}.get(c, re.escape(c)))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL), None


def map_generic(access: int) -> int:
    for bit, mapped in _GENERIC:
        if access & bit:
            access = (access & ~bit) | mapped
    return access


def encode_name(name: str) -> bytes:
    try:
        return name.encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        raise SmbError(Status.OBJECT_NAME_INVALID) from None


def split_path(path: str) -> list[str]:
    if path.startswith("\\"):
        raise SmbError(Status.INVALID_PARAMETER, "path starts with a backslash")
    if path.endswith("::$DATA"):
        path = path[:-7]
    parts = [p for p in path.split("\\") if p]
    for p in parts:
        if p in (".", "..") or ":" in p or any(c in p for c in '*?<>"|') or "/" in p:
            raise SmbError(Status.OBJECT_NAME_INVALID, repr(p))
    return parts


class NotifyHub:
    """Change-notify watches by (share id, directory id), fed by the MetadataService."""

    def __init__(self) -> None:
        self.watches: dict[tuple[int, int], list[Open]] = {}

    def add(self, op: Open) -> None:
        self.watches.setdefault((op.tree.share.sid, op.fileid), []).append(op)

    def remove(self, op: Open) -> None:
        lst = self.watches.get((op.tree.share.sid, op.fileid))
        if lst and op in lst:
            lst.remove(op)
            if not lst:
                del self.watches[(op.tree.share.sid, op.fileid)]

    def changed(self, share: Any, dir_id: int, action: int, name: bytes) -> None:
        for op in self.watches.get((share.sid, dir_id), ()):
            op.watch.event(action, name.decode("utf-8", "surrogateescape"))


class Watch:
    """Buffered events of one directory open, and the CHANGE_NOTIFY waiting for them."""

    def __init__(self, filter_: int) -> None:
        self.filter = filter_
        self.events: list[tuple[int, str]] = []
        self.waiter: defer.Deferred | None = None
        self.max_len = 0
        self.overflow = False

    def event(self, action: int, name: str) -> None:
        if not self.filter & 0x3:  # FILE_NAME | DIR_NAME
            return
        if len(self.events) > 1000:
            self.overflow = True
            self.events.clear()
        else:
            self.events.append((action, name))
        if self.waiter is not None:
            self.flush()

    def flush(self) -> None:
        d, self.waiter = self.waiter, None
        entries = []
        for action, name in self.events:
            raw = name.encode("utf-16-le", "surrogatepass")
            entries.append(struct.pack("<III", 0, action, len(raw)) + raw)
        data = FI.pack_entries(entries)
        self.events = []
        if self.overflow or len(data) > self.max_len:
            self.overflow = False
            d.callback(Reply(Status.NOTIFY_ENUM_DIR, M.buffer_response(b"")))
        else:
            d.callback(Reply(Status.SUCCESS, M.buffer_response(data)))


def smb_name(share_name: str) -> str:
    """The SMB share name of an export path: ``/export`` → ``export``, ``/a/b`` → ``a_b``."""
    return share_name.strip("/").replace("/", "_") or "root"
