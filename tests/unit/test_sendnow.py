"""send_now over a real loopback connection whose reader is slower than the writer."""

from __future__ import annotations

import os
import socket
import time

import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.protocol import Factory, Protocol

from dittofs.sendnow import send_now


@pytest_twisted.ensureDeferred
async def test_what_the_socket_cannot_take_goes_out_in_order_unchanged_then_the_close():
    """Replies larger than the socket buffer wait in the transport's queue: later replies
    go after them, a mutable buffer goes out as it was when sent (changed right after),
    and a close waits for the queue to drain."""
    big = [os.urandom(3 << 20) for _ in range(3)]
    mutable = bytearray(os.urandom(1 << 20))
    expected = big[0] + big[1][5:] + bytes(mutable) + b"tail" + big[2] + b"end"
    seen = {}

    class Sender(Protocol):
        def connectionMade(self):
            send_now(self.transport, [big[0], memoryview(big[1])[5:]])
            seen["queued"] = len(self.transport.__dict__.get("_send_queue") or ())
            send_now(self.transport, [memoryview(mutable), b"tail"])
            mutable[:] = bytes(len(mutable))
            send_now(self.transport, [big[2]])
            reactor.callLater(0.3, self.more)

        def more(self):
            seen["still queued"] = len(self.transport.__dict__.get("_send_queue") or ())
            send_now(self.transport, [b"end"])
            self.transport.loseConnection()

    port = reactor.listenTCP(0, Factory.forProtocol(Sender), interface="127.0.0.1")

    def client():
        s = socket.socket()
        s.settimeout(20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(("127.0.0.1", port.getHost().port))
        time.sleep(0.6)  # the server's socket fills; it queues the rest
        got = bytearray()
        while chunk := s.recv(1 << 20):
            got += chunk
        s.close()
        return bytes(got)

    try:
        got = await threads.deferToThread(client)
    finally:
        await port.stopListening()
    assert seen["queued"] >= 1 and seen["still queued"] >= 1  # the queue was used
    assert len(got) == len(expected) and got == expected  # then EOF: the close came last
