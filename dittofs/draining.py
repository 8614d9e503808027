"""A Twisted factory that knows when its connections have no request in flight, so that a
protocol adapter can stop accepting, drain, and only then close (graceful shutdown)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory


class DrainingFactory(Factory):
    """Builds protocols that have an ``inflight`` count; ``drain`` fires when none has
    work in progress.  Protocols call ``maybe_drained`` when their count drops to zero."""

    def __init__(self) -> None:
        self.connections: set[Any] = set()
        self._drain_waiters: list[defer.Deferred] = []

    @staticmethod
    def inflight(protocol: Any) -> int:
        return protocol.inflight

    def busy(self) -> bool:
        return any(self.inflight(c) for c in self.connections)

    def drain(self) -> defer.Deferred:
        if not self.busy():
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drain_waiters.append(d)
        return d

    def maybe_drained(self) -> None:
        if self._drain_waiters and not self.busy():
            waiters, self._drain_waiters = self._drain_waiters, []
            for d in waiters:
                d.callback(None)

    def close_all(self) -> None:
        for c in list(self.connections):
            c.transport.loseConnection()
