"""Named stores, built once from configuration and shared by every share that names them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dittofs.config import Config, StoreConfig
from dittofs.metadata.stores.memory import MemoryMetadataStore
from dittofs.payload.memory import MemoryPayloadService

METADATA_TYPES: dict[str, Callable[[str, StoreConfig], Any]] = {
    "memory": lambda name, cfg: MemoryMetadataStore(name),
}
BLOCK_TYPES: dict[str, Callable[[str, StoreConfig], Any]] = {
    "memory": lambda name, cfg: MemoryPayloadService(name),
}


class StoreRegistry:
    """Creates each configured store on first use and hands out the same instance after."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metadata: dict[str, Any] = {}
        self.payload: dict[str, Any] = {}

    def metadata_store(self, name: str) -> Any:
        if name not in self.metadata:
            cfg = self.config.metadata_stores[name]
            self.metadata[name] = METADATA_TYPES[cfg.type](name, cfg)
        return self.metadata[name]

    def payload_service(self, name: str) -> Any:
        if name not in self.payload:
            cfg = self.config.block_stores[name]
            self.payload[name] = BLOCK_TYPES[cfg.type](name, cfg)
        return self.payload[name]

    def all(self) -> list[Any]:
        return [*self.metadata.values(), *self.payload.values()]
