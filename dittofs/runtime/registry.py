"""Named stores, built once from configuration and shared by every share that names them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dittofs.config import Config, ConfigError, StoreConfig
from dittofs.metadata.errors import MetadataError
from dittofs.payload.memory import MemoryPayloadService


def _memory(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.metadata.stores.memory import MemoryMetadataStore
    return MemoryMetadataStore(name)


def _lmdb(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.metadata.stores.lmdb import DEFAULT_MAP_SIZE, LmdbMetadataStore
    path = cfg.options.get("path") or config.data_path / "metadata" / name
    return LmdbMetadataStore(name, path, int(cfg.options.get("map_size", DEFAULT_MAP_SIZE)))


def _postgres(name: str, cfg: StoreConfig, config: Config) -> Any:
    from dittofs.metadata.stores.postgres import PostgresMetadataStore
    url = cfg.options.get("url")
    if not url:
        raise ConfigError(f"metadata_stores.{name}.url: a PostgreSQL URL is required")
    return PostgresMetadataStore(name, str(url), cfg.options.get("schema"),
                                 int(cfg.options.get("pool_size", 4)))


METADATA_TYPES: dict[str, Callable[[str, StoreConfig, Config], Any]] = {
    "memory": _memory, "lmdb": _lmdb, "postgres": _postgres,
}
BLOCK_TYPES: dict[str, Callable[[str, StoreConfig, Config], Any]] = {
    "memory": lambda name, cfg, config: MemoryPayloadService(name),
}


class StoreRegistry:
    """Creates each configured store on first use and hands out the same instance after.

    A store that cannot open raises ConfigError naming the store and the problem.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metadata: dict[str, Any] = {}
        self.payload: dict[str, Any] = {}

    def metadata_store(self, name: str) -> Any:
        if name not in self.metadata:
            cfg = self.config.metadata_stores[name]
            try:
                self.metadata[name] = METADATA_TYPES[cfg.type](name, cfg, self.config)
            except MetadataError as e:
                raise ConfigError(f"metadata_stores.{name}: {e}") from None
        return self.metadata[name]

    def payload_service(self, name: str) -> Any:
        if name not in self.payload:
            cfg = self.config.block_stores[name]
            self.payload[name] = BLOCK_TYPES[cfg.type](name, cfg, self.config)
        return self.payload[name]

    def all(self) -> list[Any]:
        return [*self.metadata.values(), *self.payload.values()]
