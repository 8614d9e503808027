"""Opaque NFS file handles: share id, file id and a keyed check, 21 bytes of the 64 allowed.

Layout: version (1) | share id (4, big-endian) | file id (8) | check (8), where the
check is a keyed BLAKE2b of the first 13 bytes.  A handle that does not verify is
forged (BADHANDLE); one that verifies but names a share or file that is gone is STALE.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

VERSION = 1
_BODY = struct.Struct(">BIQ")
HANDLE_SIZE = _BODY.size + 8


class BadHandle(ValueError):
    """The handle was not made by this server (wrong size, version or check)."""


def share_id(name: str) -> int:
    """A stable 32-bit id for a share name (never 0)."""
    return zlib.crc32(name.encode()) or 1


class HandleCodec:
    """Makes and verifies handles with one secret key."""

    __slots__ = ("_key", "_cache", "_made")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("handle key must be at least 16 bytes")
        self._key = key[:64]
        self._cache: dict[bytes, tuple[int, int]] = {}
        self._made: dict[tuple[int, int], bytes] = {}

    def cookie_verifier(self) -> bytes:
        """A READDIR cookie verifier: directory cookies are stable across restarts for the
        persistent stores, so the verifier is too; it differs between servers (keys)."""
        return hashlib.blake2b(b"cookieverf", digest_size=8, key=self._key).digest()

    def _check(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, digest_size=8, key=self._key).digest()

    def make(self, sid: int, fileid: int) -> bytes:
        made = self._made.get((sid, fileid))
        if made is not None:
            return made
        body = _BODY.pack(VERSION, sid, fileid)
        handle = body + self._check(body)
        if len(self._made) > 65536:
            self._made.clear()
        self._made[(sid, fileid)] = handle
        return handle

    def parse(self, handle: bytes) -> tuple[int, int]:
        """Return (share id, file id); raise BadHandle for anything we did not issue."""
        hit = self._cache.get(handle)
        if hit is not None:
            return hit
        if len(handle) != HANDLE_SIZE:
            raise BadHandle(f"handle of {len(handle)} bytes")
        body = handle[:_BODY.size]
        version, sid, fileid = _BODY.unpack(body)
        if version != VERSION or self._check(body) != handle[_BODY.size:]:
            raise BadHandle("handle check failed")
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[bytes(handle)] = (sid, fileid)
        return sid, fileid
