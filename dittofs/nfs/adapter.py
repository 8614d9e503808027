"""NfsAdapter: the service that serves portmap, MOUNT and NFSv3 on one TCP port."""

from __future__ import annotations

from typing import Any

from dittofs.nfs.handlers import NfsHandlers
from dittofs.nfs.mount import MountHandlers
from dittofs.nfs.portmap import PortmapHandlers
from dittofs.rpc.program import program_table
from dittofs.rpc.server import RpcDispatcher, RpcFactory
from dittofs.runtime.adapter import TcpAdapter


class NfsAdapter(TcpAdapter):
    name = "nfs"
    label = "NFSv3, MOUNT v3 and portmap"

    def __init__(self, runtime: Any, bind: str, port: int, max_record: int,
                 reactor: Any = None) -> None:
        super().__init__(runtime, bind, port, reactor)
        self.max_record = max_record

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
