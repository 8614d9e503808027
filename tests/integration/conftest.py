from __future__ import annotations

import shutil
import uuid

import pytest

from tests.support.server import ServerProcess

HAVE_LIBNFS = shutil.which("nfs-ls") is not None
needs_libnfs = pytest.mark.skipif(not HAVE_LIBNFS, reason="libnfs-utils is not installed")


def metadata_config(kind: str, request) -> dict:
    """A server config whose /export uses a metadata store of ``kind``."""
    if kind == "memory":
        store = {"type": "memory"}
    elif kind == "lmdb":
        store = {"type": "lmdb"}  # under the server's data dir
    else:
        pg = request.getfixturevalue("postgres")
        store = {"type": "postgres", "url": pg.url, "schema": "it_" + uuid.uuid4().hex[:10]}
    return {"metadata_stores": {"default": store}}


def stop_and_check(srv: ServerProcess) -> None:
    alive = srv.alive()
    rc = srv.stop()
    log = srv.log_text()
    srv.cleanup()
    assert alive, f"server died during the tests:\n{log}"
    # twistd re-raises the signal after a clean shutdown, so -SIGTERM is a clean exit too.
    assert rc in (0, -15) and "Server Shut Down" in log, f"unclean exit {rc}:\n{log}"
    assert "Traceback" not in log, log


@pytest.fixture(scope="module", params=["memory", "lmdb", "postgres"])
def server(request):
    """The real server on each metadata backend in turn."""
    srv = ServerProcess(metadata_config(request.param, request)).start()
    srv.backend = request.param
    yield srv
    stop_and_check(srv)
