"""SMB2 message signing (MS-SMB2 3.1.4.1) and SMB 3.x key derivation (3.1.4.2)."""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

DIALECT_202, DIALECT_210, DIALECT_300, DIALECT_302, DIALECT_311 = (
    0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
_SIG = slice(48, 64)
_ZERO16 = bytes(16)


def kdf(key: bytes, label: bytes, context: bytes) -> bytes:
    """SP800-108 counter mode with HMAC-SHA256, r=32, L=128."""
    return KBKDFHMAC(algorithm=hashes.SHA256(), mode=Mode.CounterMode, length=16, rlen=4,
                     llen=4, location=CounterLocation.BeforeFixed, label=label,
                     context=context, fixed=None).derive(key)


def signing_key(dialect: int, session_key: bytes, preauth_hash: bytes = b"") -> bytes:
    key = session_key[:16].ljust(16, b"\x00")
    if dialect < DIALECT_300:
        return key
    if dialect == DIALECT_311:
        return kdf(key, b"SMBSigningKey\x00", preauth_hash)
    return kdf(key, b"SMB2AESCMAC\x00", b"SmbSign\x00")


@functools.lru_cache(maxsize=1024)
def _keyed(legacy: bool, key: bytes) -> Any:
    """A MAC context keyed for one session, copied per message: setting up AES-CMAC (or
    HMAC) anew for every message cost three times the MAC itself."""
    if legacy:
        return hmac.new(key, digestmod=hashlib.sha256)
    return cmac.CMAC(algorithms.AES(key))


def signature(dialect: int, key: bytes, message: bytes | bytearray) -> bytes:
    """The signature of ``message`` (its own signature field is taken as zero)."""
    c = _keyed(dialect < DIALECT_300, key).copy()
    view = memoryview(message)
    c.update(view[:48])
    c.update(_ZERO16)
    c.update(view[64:])
    view.release()
    if dialect < DIALECT_300:
        return c.digest()[:16]
    return c.finalize()


def sign(dialect: int, key: bytes, message: bytearray) -> None:
    """Set SMB2_FLAGS_SIGNED and write the signature into ``message`` in place."""
    message[16] |= 0x08
    message[_SIG] = signature(dialect, key, message)


def verify(dialect: int, key: bytes, message: bytes) -> bool:
    return hmac.compare_digest(signature(dialect, key, message), bytes(message[_SIG]))


def preauth(previous: bytes, message: bytes) -> bytes:
    """One step of the 3.1.1 pre-authentication integrity hash (SHA-512)."""
    return hashlib.sha512(previous + message).digest()
