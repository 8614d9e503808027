"""The RPC protocol and dispatcher over an in-memory transport; fuzzed with hypothesis."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.testing import StringTransport

from dittofs.rpc.message import AcceptStat, encode_call
from dittofs.rpc.program import Procedure, Program, program_table
from dittofs.rpc.record import RecordReader, frame_bytes
from dittofs.rpc.server import RpcDispatcher, RpcFactory
from dittofs.rpc.xdr import U32, VOID


class Echo:
    def __init__(self):
        self.pending = []

    async def double(self, n, ctx):
        return n * 2

    async def later(self, n, ctx):
        d = defer.Deferred()
        self.pending.append((d, n))
        return await d

    async def crash(self, n, ctx):
        raise RuntimeError("handler bug")


def make():
    echo = Echo()
    prog = Program(400000, "ECHO", {1: {
        0: Procedure("NULL", VOID, VOID, _null),
        1: Procedure("DOUBLE", U32, U32, echo.double),
        2: Procedure("LATER", U32, U32, echo.later),
        3: Procedure("CRASH", U32, U32, echo.crash),
        4: Procedure("BADRESULT", U32, U32, _bad_result),
    }})
    factory = RpcFactory(RpcDispatcher(program_table(prog)), max_record=4096)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return echo, factory, proto, transport


async def _null(args, ctx):
    return None


async def _bad_result(n, ctx):
    return -1  # not a uint32: encoding fails


def call(xid, proc, arg=None, prog=400000, vers=1):
    body = encode_call(xid, prog, vers, proc) + (b"" if arg is None else struct.pack(">I", arg))
    return frame_bytes(body)


def replies(transport):
    out = RecordReader().feed(transport.value())
    transport.clear()
    return [(struct.unpack_from(">I", r, 0)[0], struct.unpack_from(">I", r, 20)[0], r[24:])
            for r in out]


def test_sync_reply():
    _, _, proto, t = make()
    proto.dataReceived(call(1, 1, 21))
    assert replies(t) == [(1, AcceptStat.SUCCESS, struct.pack(">I", 42))]


def test_out_of_order_replies_by_xid_and_drain():
    echo, factory, proto, t = make()
    proto.dataReceived(call(1, 2, 5) + call(2, 1, 7))
    assert replies(t) == [(2, 0, struct.pack(">I", 14))]
    assert factory.busy()
    drained = factory.drain()
    assert not drained.called
    d, n = echo.pending.pop()
    d.callback(n + 1)
    assert replies(t) == [(1, 0, struct.pack(">I", 6))]
    assert drained.called


def test_errors():
    _, _, proto, t = make()
    proto.dataReceived(call(1, 9) + call(2, 1, prog=1) + call(3, 1, vers=7) + call(4, 1)
                       + call(5, 3, 1) + call(6, 4, 1))
    got = replies(t)
    assert [(x, s) for x, s, _ in got] == [
        (1, AcceptStat.PROC_UNAVAIL), (2, AcceptStat.PROG_UNAVAIL),
        (3, AcceptStat.PROG_MISMATCH), (4, AcceptStat.GARBAGE_ARGS),
        (5, AcceptStat.SYSTEM_ERR), (6, AcceptStat.SYSTEM_ERR)]
    assert got[2][2] == struct.pack(">II", 1, 1)
    assert t.connected


def test_oversized_record_closes():
    _, _, proto, t = make()
    proto.dataReceived(struct.pack(">I", 0x80000000 | 5000))
    assert t.disconnecting


def test_backpressure_pauses_reading():
    echo, _, proto, t = make()
    proto.dataReceived(b"".join(call(i, 2, i) for i in range(70)))
    assert t.producerState == "paused"
    for d, n in list(echo.pending):
        d.callback(n)
    assert t.producerState == "producing"
    assert len(replies(t)) == 70


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.binary(max_size=120),
    st.builds(lambda b: frame_bytes(b), st.binary(max_size=120)),
    st.builds(lambda x, p, a: call(x, p, a), st.integers(0, 2**32 - 1), st.integers(0, 6),
              st.integers(0, 2**32 - 1)),
), max_size=8))
def test_random_bytes_never_escape(chunks):
    _, _, proto, t = make()
    for c in chunks:
        proto.dataReceived(c)  # must not raise, whatever arrives
        if t.disconnecting:
            break
