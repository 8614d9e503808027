"""Runtime: the root service that owns stores and shares and starts the adapters.

Start-up is staged: stores and share roots first, then the adapters.  Shutdown is
staged the other way: adapters stop accepting and drain, then stores close.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from dittofs.config import Config, ConfigError
from dittofs.metadata.service import MetadataService
from dittofs.nfs.handles import HandleCodec, share_id
from dittofs.runtime.registry import StoreRegistry
from dittofs.runtime.shares import Share, ShareTable

log = Logger(namespace="dittofs.runtime")


def load_handle_key(data_dir: Path) -> bytes:
    """The secret that signs file handles, kept in the data dir so handles survive restarts."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "handle.key"
        if path.exists():
            key = path.read_bytes()
            if len(key) >= 16:
                return key
        key = os.urandom(32)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return key
    except OSError as e:
        raise ConfigError(f"server.data_dir: cannot use {data_dir}: {e.strerror}") from None


class Runtime(MultiService):
    """Holds the live stores, shares and services; adapters are its children."""

    def __init__(self, config: Config, config_path: str | None = None,
                 reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.config = config
        self.config_path = config_path
        if config.tracing.enabled:
            from dittofs import tracing
            tracing.configure(config.tracing.endpoint, float(config.tracing.sample_rate),
                              config.tracing.service_name)
        self.metrics = None
        if config.metrics.enabled:
            from dittofs.metrics import Metrics
            self.metrics = Metrics()
            self.metrics.watch(self)
        self.shares = ShareTable()
        self.metadata = MetadataService()
        self.registry = StoreRegistry(config, self.metrics)
        self.handles = HandleCodec(load_handle_key(config.data_path))
        from dittofs.smb.users import UserDirectory
        self.users = UserDirectory.from_config(config)  # SMB users; the control plane adds
        # Open every store now, before the reactor runs, so that one that cannot open
        # stops start-up with a message naming it.
        for sc in config.shares:
            self.registry.payload_service(sc.block_store, sc.metadata_store)
        if self.metrics is not None:
            for (bs, ms), payload in self.registry.payload.items():
                payload.transfer.upload_latency = self.metrics.upload_latency.labels(f"{bs}/{ms}")

    def startService(self) -> None:
        self.running = 1
        self.reactor.callWhenRunning(self._install_signal_handlers)
        d = defer.ensureDeferred(self._prepare())
        d.addCallback(lambda _: self._start_children())
        d.addErrback(self._failed)

    async def _prepare(self) -> None:
        await self.registry.start()
        for sc in self.config.shares:
            await self.add_share(sc)

    async def add_share(self, sc: Any) -> Share:
        """Serve ``sc`` (a ShareConfig on declared stores) from now on, over every adapter."""
        if sc.name in self.shares.by_name:
            raise ValueError(f"share {sc.name} exists")
        if sc.metadata_store not in self.registry.metadata_configs:
            raise ValueError(f"no metadata store named {sc.metadata_store!r}")
        if sc.block_store not in self.registry.block_configs:
            raise ValueError(f"no block store named {sc.block_store!r}")
        started = (sc.block_store, sc.metadata_store) in self.registry.payload
        payload = self.registry.payload_service(sc.block_store, sc.metadata_store)
        if not started and self.running:
            await payload.start()
        share = Share(
            name=sc.name, sid=share_id(sc.name),
            store=self.registry.metadata_store(sc.metadata_store), payload=payload,
            durability=sc.durability, read_only=sc.read_only, root_squash=sc.root_squash,
            all_squash=sc.all_squash,
            anon_uid=sc.anon_uid, anon_gid=sc.anon_gid, networks=sc.networks(),
            guest_ok=sc.guest_ok, smb_signing_required=sc.smb_signing_required)
        share.root_id = await self.metadata.ensure_root(share, sc.root.uid, sc.root.gid,
                                                        sc.root.mode)
        self.shares.add(share)
        if (self.registry.metadata_configs[sc.metadata_store].type != "memory"
                and self.registry.block_configs[sc.block_store].type == "memory"):
            log.warn("share {name}: metadata is persistent but file content is kept in "
                     "memory (block store {bs!r}) and will read as zeros after a restart",
                     name=sc.name, bs=sc.block_store)
        log.info("share {name} on metadata store {ms!r} and block store {bs!r}",
                 name=sc.name, ms=sc.metadata_store, bs=sc.block_store)
        return share

    def add_adapter(self, kind: str, port: int | None = None) -> Any:
        """Serve ``kind`` (nfs | smb) as configured, on ``port`` if given; started at once
        when the runtime runs."""
        if kind == "nfs":
            from dittofs.nfs.adapter import NfsAdapter
            nfs = self.config.nfs
            adapter = NfsAdapter(self, nfs.bind, nfs.port if port is None else port,
                                 nfs.max_record)
        else:
            from dittofs.smb.adapter import SmbAdapter
            adapter = SmbAdapter(self, port=port)
        adapter.setServiceParent(self)
        return adapter

    def remove_share(self, name: str) -> None:
        """Stop serving ``name``: new mounts and tree connects are refused, and handles of
        it become stale.  Its files stay in the stores."""
        self.shares.remove(name)
        log.info("share {name} removed", name=name)

    def _start_children(self) -> None:
        for child in self:
            child.startService()

    def _failed(self, failure: Any) -> None:
        log.failure("dittofs failed to start", failure)
        self.reactor.stop()

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully (and twistd exits 0, since the reactor is stopped
        by us rather than by its own handler); SIGHUP reloads what can change live."""
        import signal

        def stop(signum: int, frame: Any) -> None:
            log.info("signal {n}: shutting down gracefully", n=signum)
            self.reactor.callFromThread(self.reactor.stop)

        def hup(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self.reload)

        try:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGHUP, hup)
        except ValueError:  # not the main thread (tests): leave the handlers alone
            pass

    def reload(self) -> None:
        """Re-read the configuration file and apply what can change without a restart."""
        from dittofs.config import load
        try:
            cfg = load(self.config_path)
        except ConfigError as e:
            log.error("reload refused, keeping the running configuration: {err}", err=str(e))
            return
        from dittofs import log as logging_setup
        logging_setup.apply(cfg)
        self.refresh_tracing()
        log.info("configuration reloaded: log_level={new_level}", new_level=cfg.server.log_level)

    def refresh_tracing(self) -> None:
        """After a log level change: the adapters' per-request debug lines on or off."""
        from dittofs import log as logging_setup
        for child in self:
            dispatcher = getattr(child, "dispatcher", None)
            if dispatcher is not None:
                dispatcher.trace = logging_setup.enabled_for("dittofs.rpc", "debug")
            smb = getattr(child, "server", None)
            if smb is not None and hasattr(smb, "trace"):
                smb.trace = logging_setup.enabled_for("dittofs.smb", "debug")

    async def _stop(self) -> None:
        """Stop accepting and drain (adapters), then upload and flush within the shutdown
        timeout (payload), then close the stores."""
        for child in reversed(list(self)):
            if child.running:
                await defer.maybeDeferred(child.stopService)
        await self.registry.close(self.config.server.shutdown_timeout)
        log.info("dittofs stopped")

    def stopService(self) -> defer.Deferred:
        self.running = 0
        return defer.ensureDeferred(self._stop())
