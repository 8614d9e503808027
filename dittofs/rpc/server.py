"""ONC-RPC over TCP on Twisted: frame records, dispatch calls, write replies by xid.

The protocol only frames bytes; ``RpcDispatcher`` turns one record into reply
chunks, running handler coroutines through ``coroutines.start``.
"""

from __future__ import annotations

import enum
import itertools
import time
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from dittofs import coroutines, tracing
from dittofs.draining import DrainingFactory
from dittofs.rpc.message import (
    AcceptStat,
    RpcDenied,
    accepted_reply,
    parse_call,
    prog_mismatch_reply,
)
from dittofs.rpc.program import CallContext, Program
from dittofs.rpc.record import DEFAULT_MAX_RECORD, RecordError, RecordReader, frame
from dittofs.rpc.xdr import Packer, Unpacker, XdrError
from dittofs.sendnow import send_now

log = Logger(namespace="dittofs.rpc")

#: Calls in progress on one connection before we stop reading from it.
MAX_INFLIGHT = 64


class RpcDispatcher:
    """Decodes one call record, runs its handler, encodes the reply."""

    def __init__(self, programs: dict[int, Program], trace: bool = False,
                 metrics: Any = None) -> None:
        self.programs = programs
        self.trace = trace  # log every call (debug level): costly, off by default
        self.metrics = metrics  # dittofs.metrics.Metrics, or None when disabled

    def dispatch(self, record: bytes, client: tuple[str, int], conn_id: int) -> Any:
        """Return reply chunks, a Deferred firing with them, or None (no reply)."""
        u = Unpacker(record)
        try:
            call = parse_call(u)
        except RpcDenied as denied:
            log.info("rpc call xid={xid:#x} from {client} denied", xid=denied.xid, client=client)
            return frame([denied.reply])
        except XdrError as e:
            log.info("rpc: dropping undecodable record from {client}: {err}", client=client, err=e)
            return None
        prog = self.programs.get(call.prog)
        if prog is None:
            self._count("RPC", str(call.prog), "PROG_UNAVAIL")
            return frame([accepted_reply(call.xid, AcceptStat.PROG_UNAVAIL)])
        procs = prog.versions.get(call.vers)
        if procs is None:
            self._count(prog.name, str(call.proc), "PROG_MISMATCH")
            return frame([prog_mismatch_reply(call.xid, prog.low, prog.high)])
        procedure = procs.get(call.proc)
        if procedure is None:
            self._count(prog.name, str(call.proc), "PROC_UNAVAIL")
            return frame([accepted_reply(call.xid, AcceptStat.PROC_UNAVAIL)])
        try:
            args = procedure.args.unpack(u)
        except XdrError as e:
            log.info("{prog}.{proc} xid={xid:#x}: garbage args: {err}",
                     prog=prog.name, proc=procedure.name, xid=call.xid, err=e)
            self._count(prog.name, procedure.name, "GARBAGE_ARGS")
            return frame([accepted_reply(call.xid, AcceptStat.GARBAGE_ARGS)])
        ctx = CallContext(call, client, conn_id)
        start = time.monotonic()
        try:
            coro = procedure.handler(args, ctx)
            if tracing.enabled():
                coro = self._traced(coro, f"{prog.name}.{procedure.name}", call.xid, client)
            done, d = coroutines.start(coro)
        except Exception:
            return self._system_err(Failure(), call.xid, prog.name, procedure.name)
        if done:  # answered without waiting (most metadata reads): no Deferred at all
            return self._encode(d, call.xid, procedure, prog.name, start, ctx)
        d.addCallbacks(self._encode, self._system_err,
                       callbackArgs=(call.xid, procedure, prog.name, start, ctx),
                       errbackArgs=(call.xid, prog.name, procedure.name))
        return d

    def _encode(self, result: Any, xid: int, procedure: Any, prog_name: str,
                start: float, ctx: CallContext | None = None) -> list:
        p = Packer()
        p.raw(accepted_reply(xid))
        try:
            procedure.result.pack(p, result)
        except XdrError:
            return self._system_err(Failure(), xid, prog_name, procedure.name)
        if self.metrics is not None:
            status = result[0] if type(result) is tuple and len(result) == 2 else None
            self.metrics.request(prog_name, procedure.name,
                                 status.name if isinstance(status, enum.Enum) else "OK",
                                 time.monotonic() - start)
        if self.trace:
            cred = ctx.call.cred if ctx is not None else None
            status = result[0] if type(result) is tuple and len(result) == 2 else None
            log.debug("{prog}.{proc} xid={xid:#x} client={client} uid={uid} status={status} "
                      "{ms:.3f}ms", prog=prog_name, proc=procedure.name, xid=xid,
                      client=ctx.client[0] if ctx is not None else "-",
                      uid=cred.uid if cred is not None else "-",
                      status=status.name if isinstance(status, enum.Enum) else "OK",
                      ms=(time.monotonic() - start) * 1000)
        return frame(p.chunks())

    @staticmethod
    async def _traced(coro: Any, name: str, xid: int, client: tuple[str, int]) -> Any:
        """Run the handler inside the request's server span (children attach through the
        contextvars context Twisted gives each coroutine)."""
        with tracing.server_span(name, **{"rpc.xid": xid, "net.peer.ip": client[0]}) as sp:
            result = await coro
            status = result[0] if type(result) is tuple and len(result) == 2 else None
            if isinstance(status, enum.Enum):
                sp.set_attribute("rpc.status", status.name)
            return result

    def _count(self, prog_name: str, proc_name: str, status: str) -> None:
        if self.metrics is not None:
            self.metrics.request(prog_name, proc_name, status, 0.0)

    def _system_err(self, failure: Failure, xid: int, prog_name: str, proc_name: str) -> list:
        self._count(prog_name, proc_name, "SYSTEM_ERR")
        log.failure("{prog}.{proc} xid={xid:#x} failed", failure, prog=prog_name,
                    proc=proc_name, xid=xid)
        return frame([accepted_reply(xid, AcceptStat.SYSTEM_ERR)])


_conn_ids = itertools.count(1)


class RpcProtocol(Protocol):
    """One TCP connection: record marking in, pipelined replies out."""

    def __init__(self, dispatcher: RpcDispatcher, max_record: int) -> None:
        self.dispatcher = dispatcher
        self.reader = RecordReader(max_record)
        self.inflight = 0
        self.paused = False
        self.closing = False
        self.conn_id = next(_conn_ids)
        self.client: tuple[str, int] = ("", 0)

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.client = (getattr(peer, "host", ""), getattr(peer, "port", 0))
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        self.factory.connections.add(self)
        if self.dispatcher.metrics is not None:
            self.dispatcher.metrics.connections.labels("nfs").inc()

    def connectionLost(self, reason: Failure = None) -> None:
        self.closing = True
        if self in self.factory.connections and self.dispatcher.metrics is not None:
            self.dispatcher.metrics.connections.labels("nfs").dec()
        self.factory.connections.discard(self)
        self.factory.maybe_drained()

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            records = self.reader.feed(data)
        except RecordError as e:
            log.warn("rpc: closing connection from {client}: {err}", client=self.client, err=e)
            self.closing = True
            self.transport.loseConnection()
            return
        for record in records:
            out = self.dispatcher.dispatch(record, self.client, self.conn_id)
            if out is None:
                continue
            if type(out) is list:  # answered at once: most calls
                self._write(out)
            else:  # a Deferred (isinstance against it goes through ABCMeta: 0.35 us)
                if out.called:
                    out.addCallback(self._write).addErrback(self._write_failed)
                else:
                    self.inflight += 1
                    out.addCallback(self._write_async).addErrback(self._write_failed)
                    if self.inflight >= MAX_INFLIGHT and not self.paused:
                        self.paused = True
                        self.transport.pauseProducing()

    def _write(self, chunks: list) -> None:
        if not self.closing:
            send_now(self.transport, chunks)

    def _write_failed(self, failure: Failure) -> None:
        log.failure("rpc: cannot send a reply to {client}", failure, client=self.client)
        self.transport.loseConnection()

    def _write_async(self, chunks: list) -> None:
        self.inflight -= 1
        self._write(chunks)
        if self.paused and self.inflight < MAX_INFLIGHT // 2 and not self.closing:
            self.paused = False
            self.transport.resumeProducing()
        if not self.inflight:
            self.factory.maybe_drained()


class RpcFactory(DrainingFactory):
    """Builds RpcProtocols and tracks live connections so shutdown can drain them."""

    def __init__(self, dispatcher: RpcDispatcher, max_record: int = DEFAULT_MAX_RECORD) -> None:
        super().__init__()
        self.dispatcher = dispatcher
        self.max_record = max_record

    def buildProtocol(self, addr: Any) -> RpcProtocol:
        p = RpcProtocol(self.dispatcher, self.max_record)
        p.factory = self
        return p
