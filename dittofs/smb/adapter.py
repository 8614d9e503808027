"""SmbAdapter: the service that serves SMB2 on one TCP port (direct TCP transport)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, endpoints
from twisted.logger import Logger

from dittofs.smb.header import DEFAULT_MAX_MESSAGE
from dittofs.smb.server import SmbFactory, SmbServer

log = Logger(namespace="dittofs.smb")


class SmbAdapter(Service):
    """Listens on ``bind:port``; stopping stops accepting, drains requests, closes."""

    name = "smb"

    def __init__(self, runtime: Any, reactor: Any = None, port: int | None = None) -> None:
        import dataclasses
        self.runtime = runtime
        self.cfg = runtime.config.smb
        if port is not None:
            self.cfg = dataclasses.replace(self.cfg, port=port)
        self.listening: Any = None
        self.factory: SmbFactory | None = None
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor

    @property
    def port(self) -> int:
        return self.cfg.port

    def bound_port(self) -> int:
        return self.listening.getHost().port if self.listening is not None else self.cfg.port

    def startService(self) -> None:
        super().startService()
        c = self.cfg
        self.server = SmbServer(self.runtime, self.runtime.users,
                                c.signing_required, c.max_io, c.server_name, c.domain,
                                c.login_failure_limit, c.login_failure_window)
        self.factory = SmbFactory(self.server, max(DEFAULT_MAX_MESSAGE, c.max_io + 65536))
        interface = c.bind.replace(":", "\\:")
        ep = endpoints.serverFromString(self.reactor, f"tcp:{c.port}:interface={interface}")
        d = ep.listen(self.factory)
        d.addCallback(self._listening)
        d.addErrback(self._listen_failed)

    def _listening(self, port: Any) -> None:
        self.listening = port
        host = port.getHost()
        log.info("SMB2 listening on {host}:{port}", host=host.host, port=host.port)

    def _listen_failed(self, failure: Any) -> None:
        log.failure("SMB adapter cannot listen on {bind}:{port}", failure,
                    bind=self.cfg.bind, port=self.cfg.port)
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
                log.warn("SMB: requests still running after {t}s; closing anyway", t=limit)
            if timeout.active():
                timeout.cancel()
            self.factory.close_all()
            self.server.handlers.close_adapter()
