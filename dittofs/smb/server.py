"""The SMB2 adapter's shared state and its Twisted protocol: framing in, replies out."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from dittofs.draining import DrainingFactory
from dittofs.sendnow import send_now
from dittofs.smb import ntlmssp
from dittofs.smb.connection import Connection
from dittofs.smb.handlers import SmbHandlers
from dittofs.smb.header import Command, FrameError, FrameReader, frame_header
from dittofs.smb.sessions import FailureLimiter
from dittofs.smb.status import Status
from dittofs.smb.users import UserDirectory

log = Logger(namespace="dittofs.smb")
_STATUS_NAMES = {int(s): s.name for s in Status}


class SmbServer:
    """What every connection shares: users, opens and locks, the server GUID."""

    def __init__(self, runtime: Any, users: UserDirectory, signing_required: bool = False,
                 max_io: int = 8 * 1024 * 1024, server_name: str = "DITTOFS",
                 domain: str = "WORKGROUP", failure_limit: int = 5,
                 failure_window: float = 60.0) -> None:
        self.runtime = runtime
        self.metrics = runtime.metrics
        self.users = users
        self.signing_required = signing_required
        self.max_io = max_io
        self.server_name = server_name
        self.domain = domain
        self.guid = os.urandom(16)
        self.limiter = FailureLimiter(failure_limit, failure_window)
        self._session_ids = itertools.count(int.from_bytes(os.urandom(3), "big") << 16 | 1)
        self.handlers = SmbHandlers(self)
        from dittofs import log as logging_setup
        self.trace = logging_setup.enabled_for("dittofs.smb", "debug")  # a line per request
        self._names = {int(c): c.name for c in Command}

    def new_session_id(self) -> int:
        return next(self._session_ids)

    def new_acceptor(self) -> ntlmssp.Acceptor:
        return ntlmssp.Acceptor(self.server_name, self.domain, self.server_name.lower())

    def observe(self, command: int, status: int, started: float) -> None:
        if self.metrics is not None:
            name = _STATUS_NAMES.get(status) or f"{status:#010x}"
            self.metrics.request("SMB2", self._names.get(command, str(command)), name,
                                 time.perf_counter() - started)

    def count_bytes(self, share: Any, direction: str, n: int) -> None:
        if self.metrics is not None:
            self.metrics.bytes.labels(share.name, direction).inc(n)


class SmbProtocol(Protocol):
    def __init__(self, server: SmbServer, max_message: int) -> None:
        self.server = server
        self.reader = FrameReader(max_message)
        self.conn: Connection | None = None
        self.paused = False

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        host = self.transport.getHost()
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        self.conn = Connection(self.server, (getattr(peer, "host", ""), getattr(peer, "port", 0)),
                               (getattr(host, "host", ""), getattr(host, "port", 0)),
                               self._send, self.transport.loseConnection)
        self.conn.on_busy = self._pause
        self.conn.on_idle = self._resume
        self.factory.connections.add(self)
        if self.server.metrics is not None:
            self.server.metrics.connections.labels("smb").inc()

    def _send(self, chunks: list) -> None:
        n = sum(len(c) for c in chunks)
        send_now(self.transport, [frame_header(n), *chunks])

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.transport.pauseProducing()

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()
        if self.conn is not None and not self.conn.inflight:
            self.factory.maybe_drained()

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        try:
            messages = self.reader.feed(data)
        except FrameError as e:
            log.warn("smb: closing connection from {peer}: {err}", peer=conn.peer[0], err=e)
            conn.abort()
            return
        for m in messages:
            try:
                conn.received(m)
            except Exception:
                log.failure("smb: closing connection from {peer}", peer=conn.peer[0])
                conn.abort()
                return

    def connectionLost(self, reason: Failure = None) -> None:
        self.factory.connections.discard(self)
        if self.server.metrics is not None:
            self.server.metrics.connections.labels("smb").dec()
        if self.conn is not None:
            d = self.conn.lost()
            d.addErrback(lambda f: log.failure("smb: cleaning up a connection", f))
            d.addBoth(lambda _: self.factory.maybe_drained())


class SmbFactory(DrainingFactory):
    def __init__(self, server: SmbServer, max_message: int) -> None:
        super().__init__()
        self.server = server
        self.max_message = max_message

    def buildProtocol(self, addr: Any) -> SmbProtocol:
        p = SmbProtocol(self.server, self.max_message)
        p.factory = self
        return p

    @staticmethod
    def inflight(protocol: Any) -> int:
        return protocol.conn.inflight if protocol.conn is not None else 0
