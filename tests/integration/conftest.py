from __future__ import annotations

import shutil

import pytest

from tests.support.server import ServerProcess

HAVE_LIBNFS = shutil.which("nfs-ls") is not None
needs_libnfs = pytest.mark.skipif(not HAVE_LIBNFS, reason="libnfs-utils is not installed")


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess().start()
    yield srv
    alive = srv.alive()
    rc = srv.stop()
    log = srv.log_text()
    srv.cleanup()
    assert alive, f"server died during the tests:\n{log}"
    # twistd re-raises the signal after a clean shutdown, so -SIGTERM is a clean exit too.
    assert rc in (0, -15) and "Server Shut Down" in log, f"unclean exit {rc}:\n{log}"
    assert "Traceback" not in log, log
