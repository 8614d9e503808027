"""One SMB2 connection as a state machine: dialect, credits, sessions, signing, compounds
and async replies.  Messages come in as bytes through ``received``; replies leave through
the ``send`` callable.  File commands are handed to ``dittofs.smb.handlers``.
"""

from __future__ import annotations

import itertools
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from dittofs import coroutines, tracing
from dittofs.smb import messages as M
from dittofs.smb import ntlmssp, signing, spnego
from dittofs.smb.header import (
    F_ASYNC,
    F_RELATED,
    F_SERVER_TO_REDIR,
    F_SIGNED,
    Command,
    Flags,
    Header,
    HeaderError,
    split_compound,
)
from dittofs.smb.sessions import Session, auth_step
from dittofs.smb.status import STATUS_OF, SmbError, Status

log = Logger(namespace="dittofs.smb")

DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
WILDCARD_DIALECT = 0x02FF
SIGNING_ENABLED, SIGNING_REQUIRED = 0x1, 0x2
CAP_DFS, CAP_LEASING, CAP_LARGE_MTU = 0x1, 0x2, 0x4
PREAUTH_INTEGRITY, ENCRYPTION_CAPS, SIGNING_CAPS = 0x1, 0x2, 0x8
SHA512 = 0x1
SIGNING_ALGORITHMS = (signing.AES_GMAC, signing.AES_CMAC)
SESSION_FLAG_IS_GUEST, SESSION_FLAG_IS_NULL = 0x1, 0x2
MAX_CREDITS = 8192
MAX_INFLIGHT = 64
SMB2_02_MAX_IO = 65536
#: Commands that need no session (3.3.5.2.9).
_SESSIONLESS = (Command.NEGOTIATE, Command.SESSION_SETUP, Command.ECHO)
#: Commands that need no tree.
_TREELESS = _SESSIONLESS + (Command.LOGOFF, Command.TREE_CONNECT, Command.CANCEL)


class Disconnect(Exception):
    """The peer broke the protocol badly enough that the connection must close."""


@dataclass
class Pending:
    """Returned by a handler that answers later: STATUS_PENDING now, ``result`` later.
    ``cancel`` is called when the client cancels (the handler then fires CANCELLED)."""

    result: defer.Deferred
    cancel: Callable[[], None]


@dataclass
class Reply:
    status: int
    body: bytes | list
    error: bool = False


class Connection:
    """Owns the protocol state of one TCP connection; shared server state is in ``server``."""

    def __init__(self, server: Any, peer: tuple[str, int], local: tuple[str, int],
                 send: Callable[[list], None], close: Callable[[], None]) -> None:
        self.server = server
        self.peer = peer
        self.local = local
        self.send = send
        self.close = close
        self.dialect = 0
        self.sign_alg = signing.HMAC_SHA256
        self.negotiated = False
        self.client_guid = b""
        self.client_security_mode = 0
        self.client_capabilities = 0
        self.client_dialects: list[int] = []
        self.preauth = bytes(64)
        self.max_io = SMB2_02_MAX_IO
        self.sessions: dict[int, Session] = {}
        # Credits: ids [low, high) are granted; ``used`` holds ids taken above ``low``.
        self.seq_low = 0
        self.seq_high = 1
        self.used: set[int] = set()
        self.pending: dict[int, tuple[int, Pending]] = {}  # async id -> (message id, op)
        self.async_ids = itertools.count(1)
        self.inflight = 0
        self.closed = False
        self.on_idle: Callable[[], None] | None = None
        self.on_busy: Callable[[], None] | None = None

    # -- input -----------------------------------------------------------------------

    def received(self, message: bytes) -> None:
        if self.closed:
            return
        if message[:4] == b"\xffSMB":
            self._smb1_negotiate(message)
            return
        self.inflight += 1
        if self.inflight >= MAX_INFLIGHT and self.on_busy is not None:
            self.on_busy()
        try:
            done, d = coroutines.start(self._process(message))
        except Exception:
            self._failed(Failure())
            done, d = True, None
        if done:  # answered without waiting: no Deferred at all
            self._done(None)
            return
        d.addErrback(self._failed)
        d.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self.inflight -= 1
        if self.inflight < MAX_INFLIGHT // 2 and self.on_idle is not None:
            self.on_idle()

    def _failed(self, failure: Any) -> None:
        if failure.check(Disconnect, HeaderError, M.BadRequest):
            log.warn("smb: closing connection from {peer}: {err}", peer=self.peer[0],
                     err=failure.value)
        else:
            log.failure("smb: closing connection from {peer}", failure, peer=self.peer[0])
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.close()

    def lost(self) -> defer.Deferred:
        """The transport is gone: cancel waits and close every open."""
        self.closed = True
        for _, op in list(self.pending.values()):
            op.cancel()
        self.pending.clear()
        return defer.ensureDeferred(self._logoff_all())

    async def _logoff_all(self) -> None:
        for s in list(self.sessions.values()):
            await self.server.handlers.session_closed(s)
        self.sessions.clear()

    # -- SMB1 negotiate upgrade (MS-SMB2 3.3.5.3) -------------------------------------

    def _smb1_negotiate(self, message: bytes) -> None:
        """An SMB1 NEGOTIATE that offers SMB2 is answered with an SMB2 NEGOTIATE response:
        dialect 0x02FF when "SMB 2.???" is offered (the client then sends an SMB2
        NEGOTIATE with message id 1), else 2.0.2 directly.  Anything else closes."""
        dialect = 0
        if not self.negotiated and self.seq_low == 0 and len(message) >= 35 and \
                message[4] == 0x72:
            names = [n[1:] for n in message[35:].split(b"\x00") if n[:1] == b"\x02"]
            if b"SMB 2.???" in names:
                dialect = WILDCARD_DIALECT
            elif b"SMB 2.002" in names:
                dialect = 0x0202
        if not dialect:
            log.warn("smb: {peer} sent SMB1 without offering SMB2; closing", peer=self.peer[0])
            self.abort()
            return
        if dialect == 0x0202:
            self._choose(0x0202)
        hdr = Header(Command.NEGOTIATE, 0, credits=1, flags=Flags.SERVER_TO_REDIR)
        body = self._negotiate_body(dialect, [])
        self.seq_low, self.seq_high = 1, 2
        self.send([hdr.pack(), body])

    # -- the main path -----------------------------------------------------------------

    async def _process(self, message: bytes) -> None:
        parts = split_compound(message)
        out: list[bytearray] = []
        prev_session = prev_tree = None
        prev_file: bytes | None = None
        prev_status = 0
        chained = len(parts) > 1
        for i, (hdr, raw) in enumerate(parts):
            related = bool(hdr.flags & F_RELATED) and i > 0
            if hdr.command == Command.CANCEL:
                self._cancel(hdr)
                continue
            self._take_credits(hdr, raw)
            session_id = prev_session if related and prev_session is not None else hdr.session_id
            tree_id = prev_tree if related and prev_tree is not None else hdr.tree_id
            ctx = Context(self, hdr, raw, related, prev_file if related else None,
                          prev_status if related else 0)
            reply = await self._one(ctx, session_id, tree_id)
            prev_session, prev_tree = ctx.session_id, ctx.tree_id
            if ctx.new_file is not None:
                prev_file = ctx.new_file
            prev_status = reply.status if reply.status not in (0, Status.PENDING) else 0
            if isinstance(reply, PendingReply):
                out.append(self._build(ctx, Status.PENDING, M.error_body(), interim=reply,
                                       chained=chained))
                self._await_pending(ctx, reply)
            else:
                out.append(self._build(ctx, reply.status, reply.body, chained=chained))
                self.server.observe(hdr.command, reply.status, ctx.started)
            if self.server.trace:
                log.debug("SMB2.{command} mid={mid} session={sid:#x} user={user} "
                          "client={client} status={status:#010x} {ms:.3f}ms",
                          command=Command(hdr.command).name if hdr.command <= 0x12 else
                          hdr.command, mid=hdr.message_id, sid=ctx.session_id or 0,
                          user=ctx.session.name if ctx.session is not None else "-",
                          client=self.peer[0], status=reply.status,
                          ms=(time.perf_counter() - ctx.started) * 1000)
            if ctx.after_build is not None:
                msg = out[-1]
                ctx.after_build(bytes(msg) if isinstance(msg, bytearray) else b"".join(msg))
            if self.closed:
                return
        if not out:
            return
        if len(out) == 1:
            self.send([bytes(out[0])] if isinstance(out[0], bytearray) else out[0])
            return
        chunks = []
        for i, msg in enumerate(out):
            msg = bytearray(b"".join(msg) if isinstance(msg, list) else msg)
            if i < len(out) - 1:
                msg += bytes(-len(msg) & 7)
                struct.pack_into("<I", msg, 20, len(msg))
            chunks.append(msg)
        # Signatures cover each response with its padding, so sign after chaining.
        for msg in chunks:
            if msg[16] & F_SIGNED:
                s = self.sessions.get(struct.unpack_from("<Q", msg, 40)[0])
                if s is not None and s.signing_key:
                    signing.sign(self.sign_alg, s.signing_key, msg)
        self.send([bytes(b"".join(chunks))])

    def _take_credits(self, hdr: Header, raw: bytes) -> None:
        charge = max(hdr.credit_charge, 1)
        mid = hdr.message_id
        if mid == 0xFFFFFFFFFFFFFFFF:
            raise Disconnect("message id -1 outside an oplock break")
        if mid < self.seq_low or mid + charge > self.seq_high:
            raise Disconnect(f"message id {mid} (charge {charge}) outside the credit window "
                             f"[{self.seq_low}, {self.seq_high})")
        for m in range(mid, mid + charge):
            if m in self.used:
                raise Disconnect(f"message id {m} reused")
            self.used.add(m)
        while self.seq_low in self.used:
            self.used.discard(self.seq_low)
            self.seq_low += 1

    def _grant(self, requested: int) -> int:
        outstanding = self.seq_high - self.seq_low - len(self.used)
        grant = max(min(max(requested, 1), MAX_CREDITS - outstanding), 0)
        if outstanding + grant < 1:
            grant = 1
        self.seq_high += grant
        return grant

    async def _one(self, ctx: "Context", session_id: int, tree_id: int) -> "Reply":
        hdr = ctx.hdr
        ctx.session_id, ctx.tree_id = session_id, tree_id
        try:
            if hdr.command > Command.OPLOCK_BREAK:
                raise SmbError(Status.INVALID_PARAMETER, f"unknown command {hdr.command:#x}")
            if not self.negotiated and hdr.command != Command.NEGOTIATE:
                raise SmbError(Status.INVALID_PARAMETER, "no NEGOTIATE yet")
            if hdr.command not in _SESSIONLESS or (hdr.command == Command.SESSION_SETUP
                                                   and session_id):
                s = self.sessions.get(session_id)
                if s is None:
                    raise SmbError(Status.USER_SESSION_DELETED)
                ctx.session = s
                self._check_signature(ctx)
                if (hdr.command == Command.TREE_CONNECT and self.dialect == 0x0311
                        and s.signing_key and not ctx.signed):
                    # MS-SMB2 3.3.5.7: a 3.1.1 client proves the session key here.
                    raise Disconnect("unsigned TREE_CONNECT on an authenticated 3.1.1 session")
                if hdr.command not in _TREELESS:
                    tree = s.trees.get(tree_id)
                    if tree is None or (tree.share is not None and self.server.runtime.shares
                                        .by_name.get(tree.share.name) is not tree.share):
                        raise SmbError(Status.NETWORK_NAME_DELETED)  # or the share was removed
                    ctx.tree = tree
                    if tree.signing_required and not ctx.signed:
                        raise SmbError(Status.ACCESS_DENIED, "the share requires signing")
            elif hdr.command == Command.ECHO and session_id in self.sessions:
                ctx.session = self.sessions[session_id]
            handler = _COMMANDS.get(hdr.command)
            if handler is not None:
                return await handler(self, ctx)
            file_handler = self.server.handlers.table.get(hdr.command)
            if file_handler is None:
                raise SmbError(Status.INVALID_PARAMETER, f"unknown command {hdr.command}")
            if not isinstance(ctx.session, Session) or not ctx.session.valid:
                raise SmbError(Status.USER_SESSION_DELETED)
            if tracing.enabled():
                with tracing.server_span(f"SMB2.{Command(hdr.command).name}",
                                         **{"smb.message_id": hdr.message_id,
                                            "net.peer.ip": self.peer[0],
                                            "enduser.id": ctx.session.name}):
                    result = await file_handler(ctx)
            else:
                result = await file_handler(ctx)
            if isinstance(result, Pending):
                return PendingReply(Status.PENDING, b"", op=result)
            return result
        except SmbError as e:
            return Reply(e.status, M.error_body(e.data), True)
        except M.BadRequest as e:
            log.info("smb: {peer}: {err}", peer=self.peer[0], err=e)
            return Reply(Status.INVALID_PARAMETER, M.error_body(), True)
        except Disconnect:
            raise
        except Exception as e:
            st = STATUS_OF.get(type(e))
            if st is None:
                log.failure("smb: {command} from {peer} failed", command=Command(hdr.command).name,
                            peer=self.peer[0])
                st = Status.INTERNAL_ERROR
            return Reply(st, M.error_body(), True)

    def _check_signature(self, ctx: "Context") -> None:
        s = ctx.session
        if not s.signing_key:
            return
        if ctx.hdr.flags & F_SIGNED:
            if not signing.verify(self.sign_alg, s.signing_key, ctx.raw):
                log.warn("smb: bad signature from {peer} on session {sid}", peer=self.peer[0],
                         sid=s.id)
                raise SmbError(Status.ACCESS_DENIED, "bad signature")
            ctx.signed = True
        elif s.signing_required and s.valid:
            raise SmbError(Status.ACCESS_DENIED, "unsigned request on a signed session")

    def _build(self, ctx: "Context", status: int, body: Any, interim: Any = None,
               chained: bool = False) -> Any:
        """The response's bytes (a list of chunks, or a bytearray when signed).  A response
        ``chained`` into a compound gets the SIGNED flag but is signed by ``_process`` once
        its padding and NextCommand are final."""
        hdr = ctx.hdr
        flags = F_SERVER_TO_REDIR
        if ctx.related:
            flags |= F_RELATED
        async_id = 0
        if interim is not None:
            flags |= F_ASYNC
            async_id = interim.async_id = next(self.async_ids)
        credits = self._grant(hdr.credits)
        s = ctx.session if isinstance(ctx.session, Session) else None
        sign = (s is not None and bool(s.signing_key) and interim is None
                and (ctx.signed or s.signing_required or ctx.sign_reply))
        if sign:
            flags |= F_SIGNED
        out = Header(hdr.command, hdr.message_id, hdr.credit_charge, status, credits, flags, 0,
                     ctx.tree_id or 0, async_id, ctx.session_id or 0).pack()
        if sign:
            msg = bytearray(out)
            if isinstance(body, list):
                for b in body:
                    msg += b
            else:
                msg += body
            if not chained:
                signing.sign(self.sign_alg, s.signing_key, msg)
            return msg
        if isinstance(body, list):
            return [out, *body]
        return [out, body]

    # -- async ---------------------------------------------------------------------------

    def _await_pending(self, ctx: "Context", reply: "PendingReply") -> None:
        aid = reply.async_id
        self.pending[aid] = (ctx.hdr.message_id, reply.op)

        def finish(result: Any) -> None:
            if self.pending.pop(aid, None) is None or self.closed:
                return
            if isinstance(result, Reply):
                status, body = result.status, result.body
            else:
                status, body = result.value.status, M.error_body()
            self._send_final(ctx, aid, status, body)

        def failed(f: Any) -> None:
            if f.check(SmbError):
                finish(f)
                return
            log.failure("smb: async request failed", f)
            finish(Reply(Status.INTERNAL_ERROR, M.error_body()))

        reply.op.result.addCallbacks(finish, failed)

    def _send_final(self, ctx: "Context", aid: int, status: int, body: Any) -> None:
        hdr = ctx.hdr
        s = ctx.session if isinstance(ctx.session, Session) else None
        flags = Flags.SERVER_TO_REDIR | Flags.ASYNC_COMMAND
        sign = s is not None and bool(s.signing_key) and (ctx.signed or s.signing_required)
        out = bytearray(Header(hdr.command, hdr.message_id, 0, status, 0, flags, 0, 0, aid,
                               ctx.session_id or 0).pack())
        out += b"".join(body) if isinstance(body, list) else body
        if sign:
            signing.sign(self.sign_alg, s.signing_key, out)
        self.send([bytes(out)])
        self.server.observe(hdr.command, status, ctx.started)

    def _cancel(self, hdr: Header) -> None:
        if hdr.flags & F_ASYNC:
            entry = self.pending.get(hdr.async_id)
        else:
            entry = next((e for e in self.pending.values() if e[0] == hdr.message_id), None)
        if entry is not None:
            entry[1].cancel()

    # -- NEGOTIATE -----------------------------------------------------------------------

    def _choose(self, dialect: int) -> None:
        self.dialect = dialect
        self.sign_alg = signing.algorithm(dialect)
        self.negotiated = True
        self.max_io = self.server.max_io if dialect >= 0x0210 else SMB2_02_MAX_IO

    def _negotiate_body(self, dialect: int, contexts: list) -> bytes:
        mode = SIGNING_ENABLED | (SIGNING_REQUIRED if self.server.signing_required else 0)
        caps = CAP_LARGE_MTU if dialect >= 0x0210 and dialect != WILDCARD_DIALECT else 0
        max_io = self.max_io if dialect != WILDCARD_DIALECT else SMB2_02_MAX_IO
        return M.negotiate_response(mode, dialect, self.server.guid, caps, max_io, max_io,
                                    max_io, ntlmssp.filetime(), spnego.neg_token_init2(),
                                    contexts)

    async def negotiate(self, ctx: "Context") -> Reply:
        if self.negotiated:
            raise Disconnect("second NEGOTIATE on one connection")
        req = M.parse_negotiate(ctx.raw)
        common = [d for d in DIALECTS if d in req.dialects]
        if not common:
            raise SmbError(Status.NOT_SUPPORTED, "no common dialect")
        dialect = common[-1]
        self._choose(dialect)
        self.client_guid = req.client_guid
        self.client_security_mode = req.security_mode
        self.client_capabilities = req.capabilities
        self.client_dialects = req.dialects
        contexts = []
        if dialect == 0x0311:
            ctypes = dict(req.contexts)
            pre = ctypes.get(PREAUTH_INTEGRITY)
            if pre is None or len(pre) < 6:
                raise SmbError(Status.INVALID_PARAMETER, "no preauth integrity context")
            count = struct.unpack_from("<H", pre)[0]
            algs = struct.unpack_from(f"<{count}H", pre, 4) if len(pre) >= 4 + 2 * count else ()
            if SHA512 not in algs:
                raise SmbError(Status.INVALID_PARAMETER, "no SHA-512 preauth integrity")
            contexts.append((PREAUTH_INTEGRITY, struct.pack("<HHH", 1, 32, SHA512)
                             + os.urandom(32)))
            sig = ctypes.get(SIGNING_CAPS)
            if sig is not None and len(sig) >= 2:
                n = struct.unpack_from("<H", sig)[0]
                offered = struct.unpack_from(f"<{n}H", sig, 2) if len(sig) >= 2 + 2 * n else ()
                # The client lists its algorithms most preferred first: take the first one
                # we have (AES-GMAC or AES-CMAC; HMAC-SHA256 is for 2.x dialects).
                chosen = next((a for a in offered if a in SIGNING_ALGORITHMS), None)
                if chosen is not None:
                    self.sign_alg = signing.algorithm(dialect, chosen)
                    contexts.append((SIGNING_CAPS, struct.pack("<HH", 1, chosen)))
            self.preauth = signing.preauth(bytes(64), bytes(ctx.raw))
        body = self._negotiate_body(dialect, contexts)
        if dialect == 0x0311:
            ctx.after_build = lambda msg: self._preauth_conn(msg)
        return Reply(Status.SUCCESS, body)

    def _preauth_conn(self, msg: bytes) -> None:
        self.preauth = signing.preauth(self.preauth, msg)

    # -- SESSION_SETUP / LOGOFF -------------------------------------------------------------

    async def session_setup(self, ctx: "Context") -> Reply:
        req = M.parse_session_setup(ctx.raw)
        if req.flags & 0x01:  # SMB2_SESSION_FLAG_BINDING: multichannel, not offered
            raise SmbError(Status.REQUEST_NOT_ACCEPTED, "session binding")
        s = ctx.session if isinstance(ctx.session, Session) else None
        if s is None:
            sid = self.server.new_session_id()
            s = Session(sid, preauth=self.preauth)
            self.sessions[sid] = s
            ctx.session = s
            ctx.session_id = sid
        elif s.valid:
            # Re-authentication: start a fresh exchange on the same session.
            s.acceptor = None
        if self.dialect == 0x0311:
            s.preauth = signing.preauth(s.preauth, bytes(ctx.raw))
        token = req.token
        try:
            status, out_token = auth_step(self, s, token, req.security_mode)
        except (spnego.DerError, ntlmssp.NtlmError, struct.error) as e:
            log.info("smb: session setup from {peer}: {err}", peer=self.peer[0], err=e)
            self._drop_session(s)
            raise SmbError(Status.INVALID_PARAMETER, str(e)) from None
        if status == Status.MORE_PROCESSING_REQUIRED:
            body = M.session_setup_response(0, out_token)
            if self.dialect == 0x0311:
                ctx.after_build = lambda msg: setattr(s, "preauth", signing.preauth(s.preauth,
                                                                                    msg))
            return Reply(status, body)
        if status != Status.SUCCESS:
            self._drop_session(s)
            raise SmbError(status)
        flags = SESSION_FLAG_IS_NULL if s.anonymous else 0
        ctx.sign_reply = bool(s.signing_key)
        return Reply(Status.SUCCESS, M.session_setup_response(flags, out_token))

    def _drop_session(self, s: Session) -> None:
        if not s.valid:
            self.sessions.pop(s.id, None)

    async def logoff(self, ctx: "Context") -> Reply:
        M.parse_simple(ctx.raw, "LOGOFF")
        s = ctx.session
        await self.server.handlers.session_closed(s)
        self.sessions.pop(s.id, None)
        return Reply(Status.SUCCESS, M.simple_response())

    async def echo(self, ctx: "Context") -> Reply:
        M.parse_simple(ctx.raw, "ECHO")
        return Reply(Status.SUCCESS, M.simple_response())


class PendingReply(Reply):
    def __init__(self, status: int, body: Any, op: Pending) -> None:
        super().__init__(status, body)
        self.op = op
        self.async_id = 0


class Context:
    """What one request's handler may see: the connection, session, tree and the request
    bytes; for compound chains also the previous request's file id and status."""

    __slots__ = ("conn", "hdr", "raw", "related", "prev_file", "prev_status", "session",
                 "session_id", "tree", "tree_id", "signed", "sign_reply", "new_file",
                 "after_build", "started")

    def __init__(self, conn: Connection, hdr: Header, raw: bytes, related: bool,
                 prev_file: bytes | None, prev_status: int) -> None:
        self.conn = conn
        self.hdr = hdr
        self.raw = raw
        self.related = related
        self.prev_file = prev_file
        self.prev_status = prev_status
        self.session: Session | None = None
        self.session_id = 0
        self.tree: Any = None
        self.tree_id = 0
        self.signed = False
        self.sign_reply = False
        self.new_file: bytes | None = None
        self.after_build: Callable[[bytes], None] | None = None
        self.started = time.perf_counter()


_COMMANDS = {
    Command.NEGOTIATE: Connection.negotiate,
    Command.SESSION_SETUP: Connection.session_setup,
    Command.LOGOFF: Connection.logoff,
    Command.ECHO: Connection.echo,
}
