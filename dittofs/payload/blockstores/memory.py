"""MemoryBlockStore: blocks in a dict (tests, and caches that need no persistence)."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from dittofs.payload.interfaces import IBlockStore


@implementer(IBlockStore)
class MemoryBlockStore:
    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> defer.Deferred:
        self.blobs[key] = bytes(data)
        return defer.succeed(None)

    def get(self, key: str) -> defer.Deferred:
        try:
            return defer.succeed(self.blobs[key])
        except KeyError:
            return defer.fail(KeyError(key))

    def delete(self, key: str) -> defer.Deferred:
        self.blobs.pop(key, None)
        return defer.succeed(None)

    def keys(self) -> defer.Deferred:
        return defer.succeed(list(self.blobs))

    def close(self) -> defer.Deferred:
        return defer.succeed(None)
