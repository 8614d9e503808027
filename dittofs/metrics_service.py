"""MetricsService: serves ``/metrics`` over twisted.web in the server's reactor, and
refreshes the statistics that need a store round trip (logical and stored bytes)."""

from __future__ import annotations

from typing import Any

from prometheus_client.twisted import MetricsResource
from twisted.application.service import Service
from twisted.internet import defer, endpoints, task
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

log = Logger(namespace="dittofs.metrics")
STATS_INTERVAL = 15.0


class MetricsService(Service):
    name = "metrics"

    def __init__(self, runtime: Any, bind: str, port: int) -> None:
        self.runtime = runtime
        self.bind = bind
        self.port = port
        self.listening: Any = None
        self._refresher = task.LoopingCall(self.refresh)

    def startService(self) -> None:
        super().startService()
        root = Resource()
        root.putChild(b"metrics", MetricsResource(registry=self.runtime.metrics.registry))
        interface = self.bind.replace(":", "\\:")
        ep = endpoints.serverFromString(self.runtime.reactor,
                                        f"tcp:{self.port}:interface={interface}")
        d = ep.listen(Site(root))
        d.addCallback(self._listening)
        d.addErrback(lambda f: log.failure("metrics cannot listen on {bind}:{port}", f,
                                           bind=self.bind, port=self.port))
        self._refresher.clock = self.runtime.reactor
        self._refresher.start(STATS_INTERVAL, now=True)

    def _listening(self, port: Any) -> None:
        self.listening = port
        log.info("metrics on http://{host}:{port}/metrics", host=port.getHost().host,
                 port=port.getHost().port)

    @defer.inlineCallbacks
    def refresh(self) -> Any:
        for payload in self.runtime.registry.payload.values():
            try:
                payload.last_stats = yield defer.ensureDeferred(payload.stats())
            except Exception as e:  # a store that is down must not stop the loop
                log.warn("metrics: statistics of {name} unavailable: {err}", name=payload.name,
                         err=repr(e))

    def stopService(self) -> Any:
        super().stopService()
        if self._refresher.running:
            self._refresher.stop()
        if self.listening is not None:
            return self.listening.stopListening()
        return None
