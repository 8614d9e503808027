"""SmbAdapter: the service that serves SMB2 on one TCP port (direct TCP transport)."""

from __future__ import annotations

import dataclasses
from typing import Any

from dittofs.runtime.adapter import TcpAdapter
from dittofs.smb.header import DEFAULT_MAX_MESSAGE
from dittofs.smb.server import SmbFactory, SmbServer


class SmbAdapter(TcpAdapter):
    name = "smb"
    label = "SMB2"

    def __init__(self, runtime: Any, reactor: Any = None, port: int | None = None) -> None:
        self.cfg = runtime.config.smb
        if port is not None:
            self.cfg = dataclasses.replace(self.cfg, port=port)
        super().__init__(runtime, self.cfg.bind, self.cfg.port, reactor)

    def build_factory(self) -> SmbFactory:
        c = self.cfg
        self.server = SmbServer(self.runtime, self.runtime.users,
                                c.signing_required, c.max_io, c.server_name, c.domain,
                                c.login_failure_limit, c.login_failure_window)
        return SmbFactory(self.server, max(DEFAULT_MAX_MESSAGE, c.max_io + 65536))

    def stopped(self) -> None:
        self.server.handlers.close_adapter()
