"""FsBlockStore: one file per block under a directory, written atomically by rename.

``<root>/<namespace>/<ab>/<abcdef...>``; writes go to a temporary name, are fsynced
when ``fsync`` is set, then renamed into place (and the directory fsynced).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from dittofs.dirsync import fsync_dir
from dittofs.payload.interfaces import IBlockStore
from dittofs.threads import LazyPool


@implementer(IBlockStore)
class FsBlockStore:
    def __init__(self, name: str, root: str | os.PathLike, fsync: bool = True,
                 threads_max: int = 4, reactor: Any = None) -> None:
        self.name = name
        self.root = Path(root)
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / ".probe"
        probe.write_bytes(b"")  # fail now, at start-up, if the directory is not writable
        probe.unlink()
        self.pool = LazyPool(f"fs-{name}", threads_max, reactor)

    def _path(self, key: str) -> Path:
        ns, _, digest = key.rpartition("/")
        if not digest or "/" in digest or digest.startswith("."):
            raise KeyError(key)
        return self.root / ns / digest[:2] / digest

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(data):x}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if self.fsync:
            fsync_dir(path.parent)

    def _get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise KeyError(key) from None

    def _delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def _keys(self) -> list[str]:
        out = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                rel = path.relative_to(self.root).parts
                out.append("/".join(rel[:-2] + (rel[-1],)))
        return out

    def put(self, key: str, data: bytes) -> Any:
        return self.pool.run(self._put, key, data)

    def get(self, key: str) -> Any:
        return self.pool.run(self._get, key)

    def delete(self, key: str) -> Any:
        return self.pool.run(self._delete, key)

    def keys(self) -> Any:
        return self.pool.run(self._keys)

    def close(self) -> Any:
        self.pool.stop()
        return defer.succeed(None)
