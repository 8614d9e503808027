"""Plain value types of the metadata layer (immutable, cheap to build)."""

from __future__ import annotations

import enum
from typing import NamedTuple


class FileType(enum.IntEnum):
    """File types; the values are those of NFSv3 ftype3 (RFC 1813 2.6)."""

    REG = 1
    DIR = 2
    BLK = 3
    CHR = 4
    LNK = 5
    SOCK = 6
    FIFO = 7


class FileRecord(NamedTuple):
    """Everything the metadata store keeps about one file.  Times are ns since the epoch."""

    fileid: int
    ftype: int
    mode: int  # permission bits and setuid/setgid/sticky (07777)
    nlink: int
    uid: int
    gid: int
    size: int
    rdev: tuple[int, int]
    atime: int
    mtime: int
    ctime: int
    parent: int  # directories only: the containing directory (itself for a root)
    target: bytes  # symlinks only
    verifier: bytes | None = None  # exclusive-create verifier until the first SETATTR


class Identity(NamedTuple):
    """Who is asking, after any squashing."""

    uid: int
    gid: int
    gids: tuple[int, ...] = ()


class DirEntry(NamedTuple):
    """One directory entry; ``cookie`` orders entries and resumes listings."""

    cookie: int
    name: bytes
    fileid: int


class FsStats(NamedTuple):
    total_bytes: int
    free_bytes: int
    avail_bytes: int
    total_files: int
    free_files: int
    avail_files: int


class SetTime(enum.IntEnum):
    """How SETATTR changes a time: leave, use the server clock, or a client value."""

    DONT_CHANGE = 0
    SERVER = 1
    CLIENT = 2


class SetAttrs(NamedTuple):
    """Requested attribute changes; None leaves an attribute alone.

    ``atime``/``mtime`` are ``(SetTime, ns)`` pairs or None.
    """

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime: tuple[int, int] | None = None
    mtime: tuple[int, int] | None = None


class WccAttr(NamedTuple):
    """The pre-operation attributes weak cache consistency needs (RFC 1813 2.6)."""

    size: int
    mtime: int
    ctime: int

    @classmethod
    def of(cls, rec: FileRecord) -> "WccAttr":
        return cls(rec.size, rec.mtime, rec.ctime)


NAME_MAX = 255
