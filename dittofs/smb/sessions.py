"""SMB2 sessions: their state, the authentication step of SESSION_SETUP (NTLMv2 over raw
NTLMSSP or SPNEGO), and the limiter of failed logons per client address."""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from dittofs.smb import ntlmssp, signing, spnego
from dittofs.smb.status import Status

log = Logger(namespace="dittofs.smb")
SIGNING_REQUIRED = 0x2  # SecurityMode bit (MS-SMB2 2.2.5)


@dataclass
class Session:
    id: int
    acceptor: ntlmssp.Acceptor | None = None
    spnego: bool = False
    mech_types_der: bytes = b""
    preauth: bytes = b""
    user: Any = None  # users.User, None for anonymous
    anonymous: bool = False
    valid: bool = False
    session_key: bytes = b""
    signing_key: bytes = b""
    signing_required: bool = False
    trees: dict = field(default_factory=dict)
    tree_ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def name(self) -> str:
        return self.user.name if self.user is not None else "anonymous"


def auth_step(conn: Any, s: Session, token: bytes, security_mode: int) -> tuple[int, bytes]:
    """One SESSION_SETUP security token in, (status, token out): raw NTLMSSP (as the Linux
    kernel sends it) or SPNEGO-wrapped (smbclient, Windows), with the mechListMIC."""
    ntlm_msg = token
    if token[:8] != ntlmssp.SIGNATURE:
        if not token:
            raise ntlmssp.NtlmError("empty security buffer")
        tok = spnego.parse_client_token(token)
        s.spnego = True
        if tok.mech_types:
            s.mech_types_der = tok.mech_types_der
            if spnego.NTLMSSP_OID not in tok.mech_types:
                return Status.LOGON_FAILURE, b""
            if tok.mech_types[0] != spnego.NTLMSSP_OID or tok.mech_token is None:
                s.acceptor = conn.server.new_acceptor()
                return Status.MORE_PROCESSING_REQUIRED, spnego.neg_token_resp(
                    spnego.ACCEPT_INCOMPLETE, supported_mech=spnego.NTLMSSP_OID)
        ntlm_msg = tok.mech_token or b""
        mic = tok.mech_list_mic
    else:
        mic = None
    if len(ntlm_msg) < 12 or ntlm_msg[:8] != ntlmssp.SIGNATURE:
        raise ntlmssp.NtlmError("not an NTLMSSP message")
    mtype = struct.unpack_from("<I", ntlm_msg, 8)[0]
    if mtype == ntlmssp.NEGOTIATE:
        s.acceptor = conn.server.new_acceptor()
        challenge = s.acceptor.challenge(ntlm_msg)
        if s.spnego:
            return Status.MORE_PROCESSING_REQUIRED, spnego.neg_token_resp(
                spnego.ACCEPT_INCOMPLETE, challenge, supported_mech=spnego.NTLMSSP_OID)
        return Status.MORE_PROCESSING_REQUIRED, challenge
    if mtype != ntlmssp.AUTHENTICATE or s.acceptor is None or not s.acceptor.challenge_msg:
        raise ntlmssp.NtlmError("NTLMSSP message out of order")
    auth = ntlmssp.parse_authenticate(ntlm_msg)
    acceptor = s.acceptor
    s.acceptor = None
    host = conn.peer[0]
    limiter = conn.server.limiter
    if limiter.blocked(host):
        log.warn("smb: logon from {peer} as {user!r} refused: too many failures",
                 peer=host, user=auth.user)
        return Status.LOGON_FAILURE, b""
    user = conn.server.users.lookup(auth.user) if auth.user else None
    result = acceptor.authenticate(ntlm_msg, auth, user.nt_hash if user else None)
    if result is None:
        limiter.failed(host)
        log.warn("smb: logon failure from {peer} as {user!r}", peer=host, user=auth.user)
        return Status.LOGON_FAILURE, b""
    if s.spnego and mic is not None and not result.anonymous:
        if not s.mech_types_der or not acceptor.verify_mic(s.mech_types_der, mic):
            limiter.failed(host)
            log.warn("smb: bad mechListMIC from {peer}", peer=host)
            return Status.LOGON_FAILURE, b""
    if result.anonymous:
        s.anonymous = True
        s.user = None
    else:
        s.user = user
        s.session_key = result.session_key
        s.signing_key = signing.signing_key(conn.dialect, result.session_key, s.preauth)
        s.signing_required = bool(conn.server.signing_required
                                  or security_mode & SIGNING_REQUIRED
                                  or conn.client_security_mode & SIGNING_REQUIRED)
    s.valid = True
    log.info("smb: session {sid} for {user} from {peer} (dialect {d:#06x}{signed})",
             sid=s.id, user=s.name, peer=host, d=conn.dialect,
             signed=", signed" if s.signing_required else "")
    if not s.spnego:
        return Status.SUCCESS, b""
    out_mic = None
    if mic is not None and not result.anonymous:
        out_mic = acceptor.mech_list_mic(s.mech_types_der)
    return Status.SUCCESS, spnego.neg_token_resp(spnego.ACCEPT_COMPLETED, mic=out_mic)


class FailureLimiter:
    """Counts failed logons per client address; after ``limit`` failures within ``window``
    seconds every further attempt from that address is refused until the window passes."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.failures: dict[str, list[float]] = {}

    def _recent(self, host: str) -> list[float]:
        now = self.clock()
        times = [t for t in self.failures.get(host, ()) if now - t < self.window]
        if times:
            self.failures[host] = times
        else:
            self.failures.pop(host, None)
        return times

    def blocked(self, host: str) -> bool:
        return self.limit > 0 and len(self._recent(host)) >= self.limit

    def failed(self, host: str) -> None:
        self._recent(host)
        self.failures.setdefault(host, []).append(self.clock())
