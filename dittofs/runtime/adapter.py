"""What every protocol adapter shares: listening on bind:port as a service, and a factory
that tracks its connections so that stopping drains requests in flight, then closes."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, endpoints
from twisted.logger import Logger

from dittofs.draining import DrainingFactory


class TcpAdapter(Service):
    """Listens on ``bind:port`` with ``build_factory()``; stopping stops accepting, waits
    up to ``server.shutdown_timeout`` for requests in flight, then closes connections."""

    label = ""  # for logs: "NFSv3, MOUNT v3 and portmap", "SMB2"

    def __init__(self, runtime: Any, bind: str, port: int, reactor: Any = None) -> None:
        self.log = Logger(namespace=f"dittofs.{self.name}")  # dittofs.nfs, dittofs.smb
        self.runtime = runtime
        self.bind = bind
        self.port = port
        self.listening: Any = None
        self.factory: DrainingFactory | None = None
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor

    def bound_port(self) -> int:
        return self.listening.getHost().port if self.listening is not None else self.port

    def build_factory(self) -> DrainingFactory:
        raise NotImplementedError

    def startService(self) -> None:
        super().startService()
        self.factory = self.build_factory()
        interface = self.bind.replace(":", "\\:")
        ep = endpoints.serverFromString(self.reactor, f"tcp:{self.port}:interface={interface}")
        d = ep.listen(self.factory)
        d.addCallback(self._listening)
        d.addErrback(self._listen_failed)

    def _listening(self, port: Any) -> None:
        self.listening = port
        host = port.getHost()
        self.log.info("{label} listening on {host}:{port}", label=self.label, host=host.host,
                 port=host.port)

    def _listen_failed(self, failure: Any) -> None:
        self.log.failure("{label} cannot listen on {bind}:{port}", failure, label=self.label,
                    bind=self.bind, port=self.port)
        self.reactor.stop()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self.listening is not None:
            yield self.listening.stopListening()
        if self.factory is not None:
            drained = self.factory.drain()
            limit = self.runtime.config.server.shutdown_timeout
            timeout = self.reactor.callLater(limit, drained.cancel)
            try:
                yield drained
            except defer.CancelledError:
                self.log.warn("{label}: requests still running after {t}s; closing anyway",
                         label=self.label, t=limit)
            if timeout.active():
                timeout.cancel()
            self.factory.close_all()
        self.stopped()

    def stopped(self) -> None:
        """After the connections are closed (for subclasses)."""
