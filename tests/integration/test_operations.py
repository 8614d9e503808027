"""Operations: Prometheus metrics after real traffic, graceful shutdown on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.request

import pytest

from dittofs.nfs import codec as C
from dittofs.nfs.const import NfsStat, Proc, StableHow
from dittofs.nfs.types import EMPTY_SATTR, DirOpArgs3
from tests.integration.conftest import metadata_config, stop_and_check
from tests.integration.test_payload_durability import read_file
from tests.support.rpcclient import NfsClient
from tests.support.server import ServerProcess, free_port, restart

pytestmark = pytest.mark.integration
OK = NfsStat.NFS3_OK


def create_write(c: NfsClient, name: bytes, data: bytes) -> bytes:
    """Mount /export, create ``name`` and write ``data`` with FILE_SYNC; return the handle."""
    root = c.mount(b"/export")[1].fhandle
    st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, name), (0, EMPTY_SATTR)))
    assert st == OK
    assert c.nfs(Proc.WRITE, C.WriteArgs(res.obj, 0, len(data), StableHow.FILE_SYNC,
                                         data))[0] == OK
    return res.obj


def metrics_server(request) -> tuple[ServerProcess, int]:
    """The embedded default with metrics on; returns the server and the metrics port."""
    mport = free_port()
    cfg = metadata_config("lmdb", request, "fs")
    cfg["metrics"] = {"enabled": True, "port": mport}
    return ServerProcess(cfg).start(), mport


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_metrics_move_with_nfs_traffic(request):
    srv, mport = metrics_server(request)
    try:
        before = scrape(mport)
        nfs_ok = 'dittofs_requests_total{procedure="%s",protocol="NFS3",status="%s"}'
        assert before.get(nfs_ok % ("WRITE", "NFS3_OK"), 0) == 0
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"m"), (0, EMPTY_SATTR)))
            for i in range(3):
                c.nfs(Proc.WRITE, C.WriteArgs(res.obj, i * 1000, 1000, StableHow.UNSTABLE,
                                              b"w" * 1000))
            c.nfs(Proc.READ, C.ReadArgs(res.obj, 0, 500))
            c.nfs(Proc.GETATTR, b"\0" * 21)
            c.nfs(Proc.COMMIT, C.CommitArgs(res.obj, 0, 0))
            during = scrape(mport)
            assert during['dittofs_connections{protocol="nfs"}'] == 1
        after = scrape(mport)
        assert after[nfs_ok % ("WRITE", "NFS3_OK")] == 3
        assert after[nfs_ok % ("READ", "NFS3_OK")] == 1
        assert after[nfs_ok % ("GETATTR", "NFS3ERR_BADHANDLE")] == 1
        assert after['dittofs_requests_total{procedure="MNT",protocol="MOUNT3",'
                     'status="MNT3_OK"}'] == 1
        assert after['dittofs_share_bytes_total{direction="written",share="/export"}'] == 3000
        assert after['dittofs_share_bytes_total{direction="read",share="/export"}'] == 500
        assert after['dittofs_request_duration_seconds_count{procedure="WRITE",'
                     'protocol="NFS3"}'] == 3
        assert after["dittofs_mounts"] >= 1
        assert after['dittofs_connections{protocol="nfs"}'] == 0
        assert 'dittofs_cache_bytes{state="dirty",store="default/default"}' in after
        assert after['dittofs_metadata_transaction_duration_seconds_count{kind="write",'
                     'store="default"}'] >= 5  # create, three writes, commit
        from zope.interface.verify import verifyObject

        from dittofs.metadata.interfaces import IMetadataStore
        from dittofs.metadata.stores.memory import MemoryMetadataStore
        from dittofs.metrics import Metrics, TimedMetadataStore
        assert verifyObject(IMetadataStore, TimedMetadataStore(MemoryMetadataStore("x"),
                                                               Metrics().store_latency))
    finally:
        stop_and_check(srv)


def test_metrics_move_with_smb_traffic(request):
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.open import CreateDisposition

    from tests.support.smb import open_file, smb_tree
    srv, mport = metrics_server(request)
    try:
        smb = 'dittofs_requests_total{procedure="%s",protocol="SMB2",status="%s"}'
        with smb_tree(srv) as (_, _, tree):
            f = open_file(tree, "metered.bin", CreateDisposition.FILE_OVERWRITE_IF)
            for i in range(3):
                f.write(b"s" * 1000, i * 1000)
            assert f.read(0, 500) == b"s" * 500
            f.close()
            with pytest.raises(SMBResponseException):
                open_file(tree, "no-such-file", CreateDisposition.FILE_OPEN)
            during = scrape(mport)
            assert during['dittofs_connections{protocol="smb"}'] == 1
        deadline = time.monotonic() + 5
        while scrape(mport)['dittofs_connections{protocol="smb"}'] and \
                time.monotonic() < deadline:
            time.sleep(0.05)  # the server sees the close a moment after the client
        after = scrape(mport)
        assert after[smb % ("WRITE", "SUCCESS")] == 3
        assert after[smb % ("READ", "SUCCESS")] == 1
        assert after[smb % ("CREATE", "SUCCESS")] == 1
        assert after[smb % ("CREATE", "OBJECT_NAME_NOT_FOUND")] == 1
        assert after[smb % ("SESSION_SETUP", "MORE_PROCESSING_REQUIRED")] == 1
        assert after['dittofs_share_bytes_total{direction="written",share="/export"}'] == 3000
        assert after['dittofs_share_bytes_total{direction="read",share="/export"}'] == 500
        assert after['dittofs_request_duration_seconds_count{procedure="WRITE",'
                     'protocol="SMB2"}'] == 3
        assert after['dittofs_connections{protocol="smb"}'] == 0
    finally:
        stop_and_check(srv)


def test_metrics_are_off_by_default(server):
    assert "metrics on" not in server.log_text()


def test_sigterm_during_a_large_copy_exits_0_and_keeps_committed_bytes(request):
    cfg = metadata_config("lmdb", request, "fs")
    cfg["server"] = {"shutdown_timeout": 10}
    srv = ServerProcess(cfg).start()
    data = os.urandom(200 * 1024 * 1024)
    committed = [0]
    try:
        with NfsClient(srv.port, timeout=20) as c:
            root = c.mount(b"/export")[1].fhandle
            st, res = c.nfs(Proc.CREATE, C.CreateArgs(DirOpArgs3(root, b"big"),
                                                      (0, EMPTY_SATTR)))
            fh = res.obj

            def copy():
                try:
                    chunk = 256 * 1024
                    for off in range(0, len(data), chunk):
                        st, _ = c.nfs(Proc.WRITE, C.WriteArgs(fh, off, chunk,
                                                              StableHow.UNSTABLE,
                                                              data[off:off + chunk]))
                        if st != OK:
                            return
                        if (off + chunk) % (4 * 1024 * 1024) == 0:
                            if c.nfs(Proc.COMMIT, C.CommitArgs(fh, 0, 0))[0] != OK:
                                return
                            committed[0] = off + chunk
                except (OSError, ConnectionError):
                    pass
            t = threading.Thread(target=copy)
            t.start()
            while committed[0] < 24 * 1024 * 1024:
                time.sleep(0.05)
            started = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            rc = srv.proc.wait(30)
            took = time.monotonic() - started
            t.join(10)
        assert rc == 0, srv.log_text()[-2000:]
        assert took < 10 + 5
        assert committed[0] >= 24 * 1024 * 1024
        restart(srv)
        with NfsClient(srv.port) as c:
            got = read_file(c, fh, committed[0])
            assert got[:committed[0]] == data[:committed[0]]
    finally:
        stop_and_check(srv)


def test_sighup_reloads_the_log_level(request):
    import yaml
    cfg = metadata_config("memory", request, "memory")
    srv = ServerProcess(cfg).start()
    try:
        with NfsClient(srv.port) as c:
            c.mount(b"/export")
        assert "MOUNT3.MNT xid" not in srv.log_text()
        cfg = dict(srv.config, server={"log_level": "debug"})
        (srv.dir / "dittofs.yaml").write_text(yaml.safe_dump(cfg))
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "configuration reloaded" not in srv.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        with NfsClient(srv.port) as c:
            c.mount(b"/export")
        time.sleep(0.2)
        log = srv.log_text()
        assert "configuration reloaded: log_level=debug" in log
        assert "MOUNT3.MNT xid" in log  # per-call tracing is on now
        assert re.search(r"MOUNT3\.MNT xid=0x[0-9a-f]+ client=127\.0\.0\.1 uid=0 "
                         r"status=MNT3_OK", log), log
        from tests.support.smb import open_file, smb_tree
        with smb_tree(srv) as (_, _, tree):
            open_file(tree, "traced.txt").close()
        time.sleep(0.2)
        log = srv.log_text()
        assert re.search(r"SMB2\.CREATE mid=\d+ session=0x[0-9a-f]+ user=alice "
                         r"client=127\.0\.0\.1 status=0x00000000", log), log
        assert "aa4e34060a4bd2975bdae707d1fa93c6" not in log  # alice's NT hash
    finally:
        stop_and_check(srv)


def test_unreachable_collector_does_not_break_requests(request):
    cfg = metadata_config("memory", request, "memory")
    cfg["tracing"] = {"enabled": True, "endpoint": f"http://127.0.0.1:{free_port()}/v1/traces"}
    srv = ServerProcess(cfg).start()
    try:
        with NfsClient(srv.port) as c:
            root = c.mount(b"/export")[1].fhandle
            for _ in range(300):
                assert c.nfs(Proc.GETATTR, root)[0] == OK
    finally:
        stop_and_check(srv)


def test_json_logs_levels_per_component_and_no_secrets(request, postgres, s3):
    import json
    pg_password = "pg-Secret-Passw0rd-4711"
    access, secret = "AKIADITTOFSTESTKEY42", "dittofs-s3-Secret-Key-0815"
    cfg = metadata_config("postgres", request, "s3")
    store = cfg["metadata_stores"]["default"]
    store["url"] = store["url"].replace("postgres@", f"postgres:{pg_password}@")
    cfg["block_stores"]["default"].update(access_key=access, secret_key=secret)
    cfg["server"] = {"log_format": "json", "log_levels": {"dittofs.mount": "warn"}}
    srv = ServerProcess(cfg).start()
    try:
        with NfsClient(srv.port) as c:
            fh = create_write(c, b"f", b"hello")
            c.nfs(Proc.COMMIT, C.CommitArgs(fh, 0, 0))
    finally:
        stop_and_check(srv, keep=True)
    text = srv.log_text()
    srv.tmp.cleanup()
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    namespaces = {e.get("log_namespace") for e in events}
    assert "dittofs.runtime" in namespaces and "dittofs.nfs" in namespaces
    assert "dittofs.mount" not in namespaces  # below its configured level
    for s in (pg_password, access, secret):
        assert s not in text
    assert any("***" in json.dumps(e) for e in events)  # the PostgreSQL URL, scrubbed


def test_dashboard_uses_only_metrics_the_server_exports(request):
    """Every metric the Grafana dashboard queries exists on a real scrape."""
    import json
    from pathlib import Path
    srv, mport = metrics_server(request)
    try:
        with NfsClient(srv.port) as c:
            c.nfs(Proc.READ, C.ReadArgs(create_write(c, b"d", b"data"), 0, 4))
        text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
        exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                    if line and not line.startswith("#")}
        dash = json.loads((Path(__file__).parents[2] / "etc" / "grafana-dashboard.json")
                          .read_text())
        used = set()
        for p in dash["panels"]:
            for t in p["targets"]:
                used |= set(re.findall(r"dittofs_[a-z_]+", t["expr"]))
        missing = sorted(used - exported)
        assert not missing, missing
    finally:
        stop_and_check(srv)
