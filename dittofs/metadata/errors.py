"""Domain errors of the metadata layer; each carries the POSIX errno it means.

Adapters map these to their own status codes (NFS3ERR_*, NTSTATUS) in one table each.
"""

from __future__ import annotations

import errno as _errno


class MetadataError(Exception):
    """Base of every metadata failure a client can be told about."""

    errno: int = _errno.EIO

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__name__)


def _error(name: str, code: int, doc: str) -> type[MetadataError]:
    return type(name, (MetadataError,), {"errno": code, "__doc__": doc})


NotFound = _error("NotFound", _errno.ENOENT, "No such file or directory.")
Exists = _error("Exists", _errno.EEXIST, "The name is already taken.")
NotDirectory = _error("NotDirectory", _errno.ENOTDIR, "A directory was required.")
IsDirectory = _error("IsDirectory", _errno.EISDIR, "The operation does not apply to directories.")
NotEmpty = _error("NotEmpty", _errno.ENOTEMPTY, "The directory is not empty.")
AccessDenied = _error("AccessDenied", _errno.EACCES, "Permission bits deny the operation.")
NotPermitted = _error("NotPermitted", _errno.EPERM, "Only the owner or root may do this.")
Stale = _error("Stale", _errno.ESTALE, "The file no longer exists.")
InvalidArgument = _error("InvalidArgument", _errno.EINVAL, "An argument is not acceptable.")
NameTooLong = _error("NameTooLong", _errno.ENAMETOOLONG, "A name is longer than 255 bytes.")
ReadOnly = _error("ReadOnly", _errno.EROFS, "The share is read-only.")
NoSpace = _error("NoSpace", _errno.ENOSPC, "The store is full.")
FileTooBig = _error("FileTooBig", _errno.EFBIG, "The file would exceed the maximum size.")
NotSupported = _error("NotSupported", _errno.EOPNOTSUPP, "The store cannot do this.")
CrossDevice = _error("CrossDevice", _errno.EXDEV, "Source and target are in different shares.")
TooManyLinks = _error("TooManyLinks", _errno.EMLINK, "The link count would exceed its limit.")
StoreIOError = _error("StoreIOError", _errno.EIO, "The store failed.")
NotSync = _error("NotSync", _errno.EAGAIN, "A SETATTR guard did not match the file's ctime.")
BadType = _error("BadType", _errno.EINVAL, "The file type is not supported.")


def from_os_error(e: OSError, what: str = "") -> MetadataError:
    """The domain error for a failed write to local storage: a full disk is NoSpace (so
    clients see NFS3ERR_NOSPC / STATUS_DISK_FULL), anything else StoreIOError."""
    text = f"{what}: {e}" if what else str(e)
    if e.errno in (_errno.ENOSPC, _errno.EDQUOT):
        return NoSpace(text)
    if e.errno == _errno.EFBIG:
        return FileTooBig(text)
    return StoreIOError(text)
