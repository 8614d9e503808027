"""Send a reply at once with one ``sendmsg`` when nothing is queued ahead of it.

Twisted's ``transport.write`` only queues: the bytes go out on the next reactor turn,
after an ``epoll_ctl`` to watch the socket for writability and before another to stop
watching it.  A request/response server that answers one small reply per request pays
those three system calls and a loop turn on every reply.  When the transport's own buffer
is empty, nothing can be reordered by sending directly; whatever the kernel does not take
is handed to the transport, which then sends it as usual.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def send_now(transport: Any, chunks: list) -> None:
    """Write ``chunks`` (bytes-like) to ``transport`` in order, directly when possible."""
    if (type(transport) is tcp.Server and transport.connected
            and not transport.disconnecting and not transport._writeDisconnected
            and not transport.TLS and not transport._tempDataBuffer
            and len(transport.dataBuffer) == transport.offset):
        try:
            sent = transport.socket.sendmsg(chunks)
        except OSError:  # EAGAIN, or an error the transport will meet and report itself
            sent = 0
        if sent:
            rest = []
            for c in chunks:
                n = len(c)
                if sent >= n:
                    sent -= n
                    continue
                rest.append(bytes(c[sent:]) if sent else bytes(c))
                sent = 0
            if not rest:
                return
            chunks = rest
    transport.writeSequence([c if type(c) is bytes else bytes(c) for c in chunks])
