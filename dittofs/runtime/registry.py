"""Named stores, built once from configuration and shared by every share that names them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from dittofs import tracing
from dittofs.config import Config, ConfigError, StoreConfig
from dittofs.metadata.errors import MetadataError
from dittofs.threads import LazyPool


def _memory(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.metadata.stores.memory import MemoryMetadataStore
    return MemoryMetadataStore(name)


def _lmdb(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs import leanpoll
    from dittofs.metadata.stores.lmdb import DEFAULT_MAP_SIZE, LmdbMetadataStore
    path = cfg.options.get("path") or config.data_path / "metadata" / name
    return LmdbMetadataStore(name, path, int(cfg.options.get("map_size", DEFAULT_MAP_SIZE)),
                             inline_sync=leanpoll.quiet)


def _postgres(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.metadata.stores.postgres import PostgresMetadataStore
    url = cfg.options.get("url")
    if not url:
        raise ConfigError(f"metadata_stores.{name}.url: a PostgreSQL URL is required")
    log.info("metadata store {name}: PostgreSQL at {url}", name=name, url=url)
    return PostgresMetadataStore(name, str(url), cfg.options.get("schema"),
                                 int(cfg.options.get("pool_size", 4)))


log = Logger(namespace="dittofs.runtime")

METADATA_TYPES: dict[str, Callable[[str, StoreConfig, Config], Any]] = {
    "memory": _memory, "lmdb": _lmdb, "postgres": _postgres,
}
def _memory_blocks(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.payload.blockstores.memory import MemoryBlockStore
    return MemoryBlockStore(name)


def _fs_blocks(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.payload.blockstores.fs import FsBlockStore
    path = cfg.options.get("path") or config.data_path / "blocks" / name
    try:
        return FsBlockStore(name, path, fsync=bool(cfg.options.get("fsync", True)))
    except OSError as e:
        raise ConfigError(f"block_stores.{name}.path: cannot use {path}: {e.strerror}") from None


def _s3_blocks(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.payload.blockstores.s3 import S3BlockStore
    o = cfg.options
    if not o.get("bucket"):
        raise ConfigError(f"block_stores.{name}.bucket: an S3 bucket is required")
    try:
        return S3BlockStore(
            name, str(o["bucket"]), prefix=str(o.get("prefix", "")),
            endpoint_url=o.get("endpoint_url"), region=str(o.get("region", "us-east-1")),
            path_style=bool(o.get("path_style", True)), access_key=o.get("access_key"),
            secret_key=o.get("secret_key"), checksums=str(o.get("checksums", "when_required")),
            threads_max=int(o.get("threads", 8)), create_bucket=bool(o.get("create_bucket")))
    except Exception as e:  # botocore raises many kinds; all mean "cannot use it"
        raise ConfigError(f"block_stores.{name}: cannot use S3 bucket {o['bucket']!r}: {e}") \
            from None


BLOCK_TYPES: dict[str, Callable[[str, StoreConfig, Config], Any]] = {
    "memory": _memory_blocks, "fs": _fs_blocks, "s3": _s3_blocks,
}


class StoreRegistry:
    """Creates each configured store on first use and hands out the same instance after.

    A store that cannot open raises ConfigError naming the store and the problem.
    """

    def __init__(self, config: Config, metrics: Any = None) -> None:
        self.config = config
        self.metrics = metrics
        self.metadata: dict[str, Any] = {}
        self.blocks: dict[str, Any] = {}
        self.payload: dict[tuple[str, str], Any] = {}
        self.hash_pool = LazyPool("hash", 2)
        # Stores declared at run time (the control plane), beside the configuration's.
        self.metadata_configs: dict[str, StoreConfig] = dict(config.metadata_stores)
        self.block_configs: dict[str, StoreConfig] = dict(config.block_stores)

    def declare(self, kind: str, name: str, cfg: StoreConfig) -> None:
        """Make a store of ``kind`` (metadata | block) known by name; opened on first use.
        Raises ValueError for a name in use or an unknown type, ConfigError if it cannot
        open."""
        from dittofs.config import BLOCK_KINDS, METADATA_KINDS
        configs = self.metadata_configs if kind == "metadata" else self.block_configs
        kinds = METADATA_KINDS if kind == "metadata" else BLOCK_KINDS
        if name in configs:
            raise ValueError(f"a {kind} store named {name!r} exists")
        if cfg.type not in kinds:
            raise ValueError(f"unknown {kind} store type {cfg.type!r}")
        configs[name] = cfg
        try:
            self.metadata_store(name) if kind == "metadata" else self.block_store(name)
        except Exception:
            del configs[name]
            raise

    def forget(self, kind: str, name: str) -> None:
        """Drop a run-time store no share uses (its data stays where it is)."""
        configs = self.metadata_configs if kind == "metadata" else self.block_configs
        if name in (self.config.metadata_stores if kind == "metadata"
                    else self.config.block_stores):
            raise ValueError(f"{kind} store {name!r} comes from the configuration file")
        in_use = [k for k in self.payload if (k[1] if kind == "metadata" else k[0]) == name]
        if in_use:
            raise ValueError(f"{kind} store {name!r} is in use")
        configs.pop(name, None)
        (self.metadata if kind == "metadata" else self.blocks).pop(name, None)

    def metadata_store(self, name: str) -> Any:
        if name not in self.metadata:
            cfg = self.metadata_configs[name]
            try:
                store = METADATA_TYPES[cfg.type](name, cfg, self.config)
            except MetadataError as e:
                raise ConfigError(f"metadata_stores.{name}: {e}") from None
            if self.metrics is not None or tracing.enabled():
                from dittofs.metrics import TimedMetadataStore
                store = TimedMetadataStore(
                    store, self.metrics.store_latency if self.metrics is not None else None)
            self.metadata[name] = store
        return self.metadata[name]

    def block_store(self, name: str) -> Any:
        if name not in self.blocks:
            cfg = self.block_configs[name]
            self.blocks[name] = BLOCK_TYPES[cfg.type](name, cfg, self.config)
        return self.blocks[name]

    def payload_service(self, block_store: str, metadata_store: str) -> Any:
        """The content path for shares on this pair of stores.  Block maps and reference
        counts live in the metadata store, so each pair is its own dedup domain."""
        from dittofs import leanpoll
        from dittofs.metadata.redo import restore_created, restore_unlinked, restore_written
        from dittofs.payload.service import CachedPayloadService
        from dittofs.payload.wal import Wal
        from dittofs.runtime.shares import owner_exists, redo_hook

        key = (block_store, metadata_store)
        if key not in self.payload:
            cfg = self.block_configs[block_store]
            wal = None
            if cfg.type != "memory":  # nothing to recover into a memory block store
                path = self.config.data_path / "wal" / f"{block_store}--{metadata_store}"
                try:
                    wal = Wal(path, inline_sync=leanpoll.quiet)
                except OSError as e:
                    raise ConfigError(f"server.data_dir: cannot keep a WAL in {path}: "
                                      f"{e.strerror}") from None
            objects = self.metadata_store(metadata_store)
            self.payload[key] = CachedPayloadService(
                block_store, self.block_store(block_store), objects,
                self.hash_pool, wal=wal,
                cache_bytes=int(cfg.options.get("cache_bytes", 512 * 1024 * 1024)),
                concurrency=int(cfg.options.get("uploads", 4)),
                wal_sync_ms=int(cfg.options.get("wal_sync_ms", 200)),
                owner_exists=owner_exists(objects),
                restore_attrs=redo_hook(objects, restore_written),
                restore_unlink=redo_hook(objects, restore_unlinked),
                restore_create=redo_hook(objects, restore_created))
        return self.payload[key]

    async def start(self) -> None:
        """Start every payload service (WAL replay)."""
        for payload in self.payload.values():
            await payload.start()

    async def close(self, timeout: float | None = None) -> None:
        """Payload first (its uploads need the metadata stores), then the stores."""
        for p in self.payload.values():
            await p.close(timeout)
        for m in self.metadata.values():
            await m.close()
        self.hash_pool.stop()
