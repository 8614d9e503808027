"""Send a reply at once with one ``sendmsg`` when nothing is queued ahead of it, and send
what the kernel did not take the same way, without copying it again.

Twisted's ``transport.write`` only queues: the bytes go out on the next reactor turn,
after an ``epoll_ctl`` to watch the socket for writability and before another to stop
watching it.  A request/response server that answers one small reply per request pays
those three system calls and a loop turn on every reply.  When the transport's own buffer
is empty, nothing can be reordered by sending directly.

What the kernel does not take (a large READ reply meets a full socket buffer) waits in a
queue of our own on the transport, as the immutable buffers it came in, and goes out with
one ``sendmsg`` of as much as the socket takes each time it is writable.  Twisted's buffer
would copy it twice (into ``bytes``, then joined with what follows) and send it 128 KiB a
turn: for 1 MiB SMB reads that was three quarters of the reactor's time.  Once the queue is
empty, the transport's own ``doWrite`` runs as before (its buffer, a pending close).
"""

from __future__ import annotations

import os
import weakref
from collections import deque
from itertools import islice
from typing import Any

from twisted.internet import main, tcp

_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)


def send_now(transport: Any, chunks: list) -> None:
    """Write ``chunks`` (bytes-like) to ``transport`` in order, directly when possible."""
    out = transport.__dict__.get("_send_queue")
    if out:  # earlier bytes still wait: these go after them
        out.extend(_frozen(c) for c in chunks)
        return
    if (type(transport) is tcp.Server and transport.connected
            and not transport.disconnecting and not transport._writeDisconnected
            and not transport.TLS and not transport._tempDataBuffer
            and len(transport.dataBuffer) == transport.offset):
        try:
            sent = transport.socket.sendmsg(chunks)
        except OSError:  # EAGAIN, or an error the transport will meet and report itself
            sent = 0
        rest = _after(chunks, sent)
        if rest:
            _queue(transport, rest)
        return
    transport.writeSequence([c if type(c) is bytes else bytes(c) for c in chunks])


def _frozen(c: Any) -> Any:
    """``c``, or a copy of it if its bytes could change before they are sent."""
    if type(c) is bytes:
        return c
    if type(c) is memoryview and c.readonly and type(c.obj) is bytes:
        return c
    return bytes(c)


def _after(chunks: Any, sent: int) -> list:
    """What is left of ``chunks`` once ``sent`` bytes of them went out (immutable)."""
    rest = []
    for c in chunks:
        n = len(c)
        if sent >= n:
            sent -= n
            continue
        c = _frozen(c)
        rest.append(memoryview(c)[sent:].toreadonly() if sent else c)
        sent = 0
    return rest


def _queue(transport: Any, rest: list) -> None:
    transport._send_queue = deque(rest)
    if "doWrite" not in transport.__dict__:
        transport.doWrite = _DoWrite(transport)
    transport.startWriting()


class _DoWrite:
    """``_do_write`` bound to a transport without a reference cycle through it (a cycle
    would keep a lost connection's queued buffers until a full garbage collection)."""

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = weakref.ref(transport)

    def __call__(self) -> Any:
        transport = self.transport()
        return None if transport is None else _do_write(transport)


def _do_write(transport: Any) -> Any:
    """The transport's ``doWrite`` while it has a queue: send what the socket takes."""
    out = transport._send_queue
    while out:
        batch = list(islice(out, _IOV_MAX))
        try:
            sent = transport.socket.sendmsg(batch)
        except BlockingIOError:
            return None
        except OSError:
            return main.CONNECTION_LOST
        rest = _after(batch, sent)
        for _ in batch:
            out.popleft()
        out.extendleft(reversed(rest))
        if rest:  # the socket is full: wait until it is writable again
            return None
    return tcp.Server.doWrite(transport)  # its own buffer, stopWriting, a pending close
