"""Passwords (argon2id, plus the NT hash SMB needs) and JWT access/refresh tokens."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dittofs.smb.ntlm_crypto import nt_hash

ALGORITHM = "HS256"
MIN_SECRET = 32
_hasher = PasswordHasher()


class TokenError(ValueError):
    """A token that is missing, malformed, tampered with, expired or of the wrong kind."""


def hash_password(password: str) -> tuple[str, str]:
    """(argon2id hash, NT hash hex) of a password.  Slow by design: run it in a pool."""
    return _hasher.hash(password), nt_hash(password).hex()


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(18)


class Tokens:
    def __init__(self, secret: bytes, access_ttl: int = 900, refresh_ttl: int = 86400) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"the JWT signing secret must be at least {MIN_SECRET} bytes")
        self.secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(self, user: str, admin: bool, kind: str = "access",
              must_change: bool = False) -> str:
        """``must_change``: the token only allows changing the user's own password."""
        now = int(time.time())
        ttl = self.access_ttl if kind == "access" else self.refresh_ttl
        claims = {"sub": user, "adm": admin, "typ": kind, "iat": now, "exp": now + ttl,
                  "jti": secrets.token_hex(8)}
        if must_change:
            claims["pwc"] = True
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str, kind: str = "access") -> dict[str, Any]:
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM],
                                options={"require": ["sub", "exp", "typ"]})
        except jwt.PyJWTError as e:
            raise TokenError(str(e)) from None
        if claims.get("typ") != kind:
            raise TokenError(f"not an {kind} token")
        return claims
