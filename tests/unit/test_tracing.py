"""Tracing: the span tree of one NFS WRITE, recorded with the SDK's in-memory exporter."""

from __future__ import annotations

import dataclasses

import pytest_twisted
from twisted.internet import reactor, threads

from dittofs import tracing
from dittofs.config import load
from dittofs.nfs import codec as C
from dittofs.nfs.adapter import NfsAdapter
from dittofs.nfs.const import Proc, StableHow
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from dittofs.runtime.service import Runtime
from tests.support.rpcclient import NfsClient


@pytest_twisted.ensureDeferred
async def test_write_span_tree(tmp_path):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    try:
        cfg = load(None, {})
        cfg = dataclasses.replace(
            cfg, server=dataclasses.replace(cfg.server, data_dir=str(tmp_path)))
        rt = Runtime(cfg)  # the embedded default: LMDB + fs, so work crosses threads
        await rt._prepare()
        adapter = NfsAdapter(rt, "127.0.0.1", 0, 1 << 22)
        port = reactor.listenTCP(0, adapter.build_factory(), interface="127.0.0.1")

        def client():
            with NfsClient(port.getHost().port) as c:
                root = c.mount(b"/export")[1].fhandle
                fh = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"t"),
                                                     (0, EMPTY_SATTR)))[1].obj
                exporter.clear()
                st, _ = c.nfs(Proc.WRITE, C.WriteArgs(fh, 0, 5, StableHow.FILE_SYNC, b"hello"))
                return st
        assert await threads.deferToThread(client) == 0
        spans = exporter.get_finished_spans()
        by_id = {s.context.span_id: s for s in spans}
        roots = [s for s in spans if s.parent is None]
        assert [s.name for s in roots] == ["NFS3.WRITE"]
        root = roots[0]
        assert root.attributes["rpc.status"] == "NFS3_OK"
        children = [s.name for s in spans if s.parent and s.parent.span_id == root.context.span_id]
        assert "metadata.get" in children  # prepare_write
        assert "cache.write" in children
        # FILE_SYNC in the local tier: the WAL fsync inside cache.write is the flush.
        assert "metadata.write" in children  # commit_write
        wal = [s for s in spans if s.name == "wal.fsync"]
        assert wal and by_id[wal[0].parent.span_id].name == "cache.write"
        assert all(s.context.trace_id == root.context.trace_id for s in spans)
        await port.stopListening()
        await rt.registry.close(5)
    finally:
        tracing.disable()
