"""NfsAdapter: the service that serves portmap, MOUNT and NFSv3 on one TCP port."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, endpoints
from twisted.logger import Logger

from dittofs.nfs.handlers import NfsHandlers
from dittofs.nfs.mount import MountHandlers
from dittofs.nfs.portmap import PortmapHandlers
from dittofs.rpc.program import program_table
from dittofs.rpc.server import RpcDispatcher, RpcFactory

log = Logger(namespace="dittofs.nfs")


class NfsAdapter(Service):
    """Listens on ``bind:port``; stopping stops accepting, drains calls, closes connections."""

    name = "nfs"

    def __init__(self, runtime: Any, bind: str, port: int, max_record: int,
                 reactor: Any = None) -> None:
        self.runtime = runtime
        self.bind = bind
        self.port = port
        self.max_record = max_record
        self.listening: Any = None
        self.factory: RpcFactory | None = None
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor

    def bound_port(self) -> int:
        return self.listening.getHost().port if self.listening is not None else self.port

    def build_factory(self) -> RpcFactory:
        rt = self.runtime
        self.nfs = NfsHandlers(rt.shares, rt.metadata, rt.handles, metrics=rt.metrics)
        mount = MountHandlers(rt.shares, rt.metadata, rt.handles)
        pmap = PortmapHandlers(self.bound_port)
        table = program_table(pmap.program(), mount.program(), self.nfs.program())
        from dittofs import log as logging_setup
        trace = (logging_setup.enabled_for("dittofs.rpc", "debug")
                 or self.runtime.config.server.log_level == "debug")
        self.dispatcher = RpcDispatcher(table, trace=trace, metrics=rt.metrics)
        return RpcFactory(self.dispatcher, self.max_record)

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
        log.info("NFSv3, MOUNT v3 and portmap listening on {host}:{port}",
                 host=host.host, port=host.port)

    def _listen_failed(self, failure: Any) -> None:
        log.failure("NFS adapter cannot listen on {bind}:{port}", failure,
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
                log.warn("NFS: calls still running after {t}s; closing anyway", t=limit)
            if timeout.active():
                timeout.cancel()
            self.factory.close_all()
