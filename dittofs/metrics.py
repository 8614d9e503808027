"""Prometheus metrics: one registry, the instruments the server updates, and scrape-time
collectors for state that already exists elsewhere (cache, WAL, transfers, mounts).

When metrics are disabled nothing here is created and callers hold ``None``: the hot
paths test one attribute and do no other work.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from zope.interface import implementer

from dittofs import tracing
from dittofs.metadata.interfaces import IMetadataStore

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The server's instruments, registered in their own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("dittofs_requests_total", "Requests answered, by protocol, "
                                "procedure and status.", ["protocol", "procedure", "status"],
                                registry=r)
        self.latency = Histogram("dittofs_request_duration_seconds", "Time to answer a request.",
                                 ["protocol", "procedure"], buckets=LATENCY_BUCKETS, registry=r)
        self.bytes = Counter("dittofs_share_bytes_total", "File content bytes read and written.",
                             ["share", "direction"], registry=r)
        self.connections = Gauge("dittofs_connections", "Open client connections.",
                                 ["protocol"], registry=r)
        self.upload_latency = Histogram("dittofs_block_upload_duration_seconds",
                                        "Time to store one block in the block store.",
                                        ["store"], buckets=LATENCY_BUCKETS, registry=r)
        self.store_latency = Histogram("dittofs_metadata_transaction_duration_seconds",
                                       "Metadata store transactions.", ["store", "kind"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self._rpc_cache: dict[tuple[str, str, str], Any] = {}
        self._lat_cache: dict[tuple[str, str], Any] = {}

    def request(self, protocol: str, procedure: str, status: str, seconds: float) -> None:
        key = (protocol, procedure, status)
        c = self._rpc_cache.get(key)
        if c is None:
            c = self._rpc_cache[key] = self.requests.labels(protocol, procedure, status)
        c.inc()
        lk = (protocol, procedure)
        h = self._lat_cache.get(lk)
        if h is None:
            h = self._lat_cache[lk] = self.latency.labels(protocol, procedure)
        h.observe(seconds)

    def watch(self, runtime: Any) -> None:
        """Collect runtime state (cache, WAL, transfers, mounts) at scrape time."""
        self.registry.register(RuntimeCollector(runtime))


@implementer(IMetadataStore)
class TimedMetadataStore:
    """An IMetadataStore that times (histogram) and traces (spans) every transaction of the
    store it wraps; either may be off."""

    def __init__(self, store: Any, histogram: Any = None) -> None:
        self._store = store
        self.name = store.name
        self.lazy_commits = store.lazy_commits
        self._read = histogram.labels(store.name, "read") if histogram is not None else None
        self._write = histogram.labels(store.name, "write") if histogram is not None else None

    def _timed(self, what: str, child: Any, fn: Any, *args: Any) -> Any:
        started = time.monotonic()
        d = tracing.around(what, fn, *args, **{"dittofs.store": self.name})
        if child is None:
            return d

        def done(result: Any) -> Any:
            child.observe(time.monotonic() - started)
            return result
        return d.addBoth(done)

    def transact(self, fn: Any, write: bool = True, durable: bool = True) -> Any:
        return self._timed("metadata.write" if write else "metadata.read",
                           self._write if write else self._read,
                           self._store.transact, fn, write, durable)

    def get(self, fileid: int) -> Any:
        return self._timed("metadata.get", self._read, self._store.get, fileid)

    def sync(self) -> Any:
        return self._timed("metadata.sync", self._write, self._store.sync)

    def usage(self) -> Any:
        return self._store.usage()

    def close(self) -> Any:
        return self._store.close()


class RuntimeCollector:
    """Reads the live objects when Prometheus scrapes: no bookkeeping on the hot path."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Any]:
        rt = self.runtime
        mounts = GaugeMetricFamily("dittofs_mounts", "MOUNT table entries.")
        mounts.add_metric([], len(rt.shares.mounts))
        yield mounts
        cache = GaugeMetricFamily("dittofs_cache_bytes", "Cache bytes by block state.",
                                  labels=["store", "state"])
        evictions = CounterMetricFamily("dittofs_cache_evictions", "Clean blocks evicted.",
                                        labels=["store"])
        wal = GaugeMetricFamily("dittofs_wal_bytes", "Bytes in WAL segments.", labels=["store"])
        queue = GaugeMetricFamily("dittofs_transfer_queue_blocks",
                                  "Blocks waiting for or in upload.", labels=["store"])
        uploads = CounterMetricFamily("dittofs_block_uploads", "Blocks stored.",
                                      labels=["store"])
        dedup = CounterMetricFamily("dittofs_dedup_hits", "Blocks not uploaded because an "
                                    "identical block was already stored.", labels=["store"])
        errors = CounterMetricFamily("dittofs_block_store_errors", "Failed block store or "
                                     "block map operations (each retry counts).",
                                     labels=["store"])
        logical = GaugeMetricFamily("dittofs_logical_bytes", "Sum of file sizes (last refresh).",
                                    labels=["store"])
        stored = GaugeMetricFamily("dittofs_stored_bytes", "Bytes in referenced blocks (last "
                                   "refresh).", labels=["store"])
        for (bs, ms), p in rt.registry.payload.items():
            name = f"{bs}/{ms}"
            c = p.cache
            uploading = sum(len(b.buf) for b in c.uploading)
            cache.add_metric([name, "dirty"], c.dirty_bytes())
            cache.add_metric([name, "uploading"], uploading)
            cache.add_metric([name, "clean"], max(c.bytes() - c.dirty_bytes(), 0))
            evictions.add_metric([name], c.evictions)
            wal.add_metric([name], p.wal.size() if p.wal is not None else 0)
            t = p.transfer
            queue.add_metric([name], len(t.queue) + t.active)
            uploads.add_metric([name], t.uploads)
            dedup.add_metric([name], t.dedup_hits)
            errors.add_metric([name], t.errors)
            last = getattr(p, "last_stats", None) or {}
            logical.add_metric([name], last.get("logical_bytes", 0))
            stored.add_metric([name], last.get("stored_bytes", 0))
        yield from (cache, evictions, wal, queue, uploads, dedup, errors, logical, stored)
