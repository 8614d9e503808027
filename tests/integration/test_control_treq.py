"""The API from Twisted's own HTTP client (treq), in the reactor, as a Twisted program
scripting dittofs would use it."""

from __future__ import annotations

import json

import pytest
import pytest_twisted

from tests.integration.conftest import stop_and_check
from tests.integration.test_control_api import ADMIN_PW, start

pytestmark = pytest.mark.integration


@pytest_twisted.ensureDeferred
async def test_treq_login_create_and_list(request):
    treq = pytest.importorskip("treq")
    srv, http = start(request, "sqlite")
    try:
        r = await treq.post(http.base + "/auth/login",
                            json={"username": "admin", "password": ADMIN_PW})
        assert r.code == 200
        token = (await r.json())["access_token"]
        headers = {b"Authorization": [f"Bearer {token}".encode()]}
        r = await treq.post(http.base + "/groups", json={"name": "ops", "gid": 7000},
                            headers=headers)
        assert r.code == 201
        r = await treq.get(http.base + "/groups", headers=headers)
        assert {"name": "ops", "gid": 7000, "members": []} in json.loads(await r.text())
        r = await treq.get(http.base + "/groups")
        assert r.code == 401 and (await r.json())["error"]["status"] == 401
    finally:
        stop_and_check(srv)
