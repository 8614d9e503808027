from __future__ import annotations

import shutil
import uuid

import pytest

from tests.support.server import ServerProcess

HAVE_LIBNFS = shutil.which("nfs-ls") is not None
needs_libnfs = pytest.mark.skipif(not HAVE_LIBNFS, reason="libnfs-utils is not installed")


def block_store_config(kind: str, request, endpoint: str | None = None) -> dict:
    if kind in ("memory", "fs"):
        return {"type": kind}  # fs: under the server's data dir
    from tests.support.s3 import ACCESS_KEY, SECRET_KEY
    endpoint = endpoint or request.getfixturevalue("s3").url
    return {"type": "s3", "bucket": "b-" + uuid.uuid4().hex[:12], "endpoint_url": endpoint,
            "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "create_bucket": True}


def metadata_config(kind: str, request, blocks: str = "memory") -> dict:
    """A server config whose /export uses a metadata store of ``kind`` and a block store
    of ``blocks``."""
    if kind == "memory":
        store = {"type": "memory"}
    elif kind == "lmdb":
        store = {"type": "lmdb"}  # under the server's data dir
    else:
        pg = request.getfixturevalue("postgres")
        store = {"type": "postgres", "url": pg.url, "schema": "it_" + uuid.uuid4().hex[:10]}
    return {"metadata_stores": {"default": store},
            "block_stores": {"default": block_store_config(blocks, request)}}


def stop_and_check(srv: ServerProcess, keep: bool = False) -> None:
    """Stop the server; it must have stayed up, stopped cleanly and logged no traceback."""
    alive = srv.alive()
    rc = srv.stop()
    log = srv.log_text()
    if not keep:
        srv.cleanup()
    assert alive, f"server died during the tests:\n{log}"
    assert rc == 0 and "dittofs stopped" in log, f"unclean exit {rc}:\n{log}"
    assert "Traceback" not in log, log


@pytest.fixture(scope="module", params=["memory+memory", "lmdb+fs", "postgres+s3"])
def server(request):
    """The real server on each metadata backend and each block store in turn."""
    meta, blocks = request.param.split("+")
    srv = ServerProcess(metadata_config(meta, request, blocks)).start()
    srv.backend = request.param
    yield srv
    stop_and_check(srv)
