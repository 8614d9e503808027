"""schemathesis against the served OpenAPI document, as an admin: no request it generates
(for every operation, including the stateful sequences) gets a 500, and the server logs no
traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import stop_and_check
from tests.integration.test_control_api import ADMIN_PW, start

pytestmark = pytest.mark.integration
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.skipif(not SCHEMATHESIS.exists() and not shutil.which("schemathesis"),
                    reason="schemathesis is not installed")
def test_schemathesis_finds_no_server_error(request, tmp_path):
    srv, http = start(request, "sqlite", limit=0)
    try:
        token = http.login("admin", ADMIN_PW)["access_token"]
        exe = str(SCHEMATHESIS) if SCHEMATHESIS.exists() else "schemathesis"
        r = subprocess.run([exe, "run", http.base + "/openapi.json", "--checks",
                            "not_a_server_error", "-H", f"Authorization: Bearer {token}",
                            "-n", "30", "--seed", "1", "-w", "1"],
                           capture_output=True, text=True, timeout=600,
                           cwd=tmp_path)  # its example cache stays out of the checkout
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
        assert " passed" in r.stdout and "failed" not in r.stdout.split("SUMMARY")[-1]
    finally:
        stop_and_check(srv)
