"""The control plane over real HTTP against the running server, on SQLite and on a real
PostgreSQL: login/refresh, users and groups, shares created and removed live and seen by
real NFS and SMB clients, security of every route, and the OpenAPI document."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import jwt
import pytest

from tests.integration.conftest import HAVE_LIBNFS, stop_and_check
from tests.support.server import ServerProcess, free_port
from tests.support.smb import HAVE_SMBCLIENT

pytestmark = pytest.mark.integration
ADMIN_PW = "Admin-pw-123"
SECRET = "s" * 40


class Http:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.token: str | None = None

    def call(self, method: str, path: str, body=None, token: str | None = None,
             raw: bytes | None = None) -> tuple[int, object]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        tok = token if token is not None else self.token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, json.loads(text) if text else None

    def login(self, user: str, password: str) -> dict:
        st, body = self.call("POST", "/auth/login", {"username": user, "password": password},
                             token="")
        assert st == 200, body
        self.token = body["access_token"]
        return body


def wait_ready(http: Http, limit: float = 30) -> None:
    """Until the API answers /health/ready (the control plane starts after the adapters)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if http.call("GET", "/health/ready", token="")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the control API did not become ready")


def start(request, db: str, limit: int = 5) -> tuple[ServerProcess, Http]:
    port = free_port()
    api = {"enabled": True, "port": port, "jwt_secret": SECRET, "login_failure_limit": limit}
    if db == "postgres":
        pg = request.getfixturevalue("postgres")
        schema = "cp_" + uuid.uuid4().hex[:8]
        import psycopg
        with psycopg.connect(pg.url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"create schema {schema}")
        api["database_url"] = pg.url + ("&" if "?" in pg.url else "?") + \
            f"options=-csearch_path%3D{schema}"
    cfg = {"metadata_stores": {"default": {"type": "memory"}},
           "block_stores": {"default": {"type": "memory"}}, "api": api}
    srv = ServerProcess(cfg, env={"DITTOFS_ADMIN_INITIAL_PASSWORD": ADMIN_PW})
    srv.start()
    http = Http(port)
    wait_ready(http)
    return srv, http


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request):
    srv, http = start(request, request.param)
    yield srv, http
    stop_and_check(srv)


def test_health_login_refresh(api):
    srv, http = api
    assert http.call("GET", "/health", token="") == (200, {"status": "ok"})
    body = http.login("admin", ADMIN_PW)
    assert body["token_type"] == "Bearer" and body["must_change_password"] is False
    st, fresh = http.call("POST", "/auth/refresh", {"refresh_token": body["refresh_token"]},
                          token="")
    assert st == 200 and fresh["access_token"]
    # an access token is not a refresh token, and the reverse
    assert http.call("POST", "/auth/refresh", {"refresh_token": body["access_token"]},
                     token="")[0] == 401
    assert http.call("GET", "/users", token=body["refresh_token"])[0] == 401
    st, err = http.call("POST", "/auth/login", {"username": "admin", "password": "nope"},
                        token="")
    assert st == 401 and err == {"error": {"status": 401,
                                           "message": "wrong user name or password"}}


def test_users_groups_and_admin_only_routes(api):
    srv, http = api
    http.login("admin", ADMIN_PW)
    st, user = http.call("POST", "/users", {"name": "dave", "password": "Dave-pw-12",
                                            "uid": 3000})
    assert st == 201 and user == {"name": "dave", "uid": 3000, "gid": 3000, "is_admin": False,
                                  "must_change_password": False}
    assert http.call("POST", "/users", {"name": "dave", "password": "Dave-pw-12",
                                        "uid": 3001})[0] == 409
    assert http.call("POST", "/groups", {"name": "eng", "gid": 4000})[0] == 201
    assert http.call("PUT", "/groups/eng/members/dave")[0] == 204
    st, groups = http.call("GET", "/groups")
    assert {"name": "eng", "gid": 4000, "members": ["dave"]} in groups
    dave = Http(int(http.base.split(":")[2].split("/")[0]))
    dave.login("dave", "Dave-pw-12")
    assert dave.call("GET", "/users")[0] == 403
    assert dave.call("POST", "/shares", {"name": "/x"})[0] == 403
    assert dave.call("GET", "/users/dave")[0] == 200
    assert dave.call("GET", "/users/admin")[0] == 403
    assert dave.call("POST", "/users/dave/password", {"old_password": "wrong-one",
                                                      "new_password": "Dave-pw-34"})[0] == 403
    assert dave.call("POST", "/users/dave/password", {"old_password": "Dave-pw-12",
                                                      "new_password": "Dave-pw-34"})[0] == 204
    dave.login("dave", "Dave-pw-34")
    assert http.call("DELETE", "/users/dave")[0] == 204
    assert http.call("GET", "/users/dave")[0] == 404


def test_every_route_refuses_bad_tokens(api):
    srv, http = api
    good = http.login("admin", ADMIN_PW)["access_token"]
    head, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_claims = base64.urlsafe_b64encode(json.dumps(
        {**claims, "sub": "someone", "adm": True}).encode()).rstrip(b"=").decode()
    tampered = f"{head}.{tampered_claims}.{sig}"
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, SECRET, algorithm="HS256")
    none_alg = jwt.encode({**claims}, None, algorithm="none")
    other_key = jwt.encode(claims, "k" * 40, algorithm="HS256")
    hs512 = jwt.encode(claims, SECRET * 2, algorithm="HS512")
    from dittofs.control.openapi import PATHS
    for path, ops in PATHS.items():
        for method, op in ops.items():
            if op.get("security") == []:
                continue
            concrete = path.removeprefix("/api/v1").replace("{name}", "admin")
            concrete = concrete.replace("{group}", "g").replace("{user}", "admin")
            concrete = concrete.replace("{kind}", "metadata").replace("{key}", "k")
            for bad in ("", "garbage", tampered, expired, none_alg, other_key, hs512):
                st, body = http.call(method.upper(), concrete, {}, token=bad or "")
                assert st == 401, (method, concrete, bad[:20], st, body)
                assert body["error"]["status"] == 401


def test_bad_input_is_400_not_500(api):
    srv, http = api
    http.login("admin", ADMIN_PW)
    for name in ("x'; drop table users; --", "a" * 200, "", "../etc", "1abc"):
        st, body = http.call("POST", "/users", {"name": name, "password": "Pw-long-enough",
                                                "uid": 5})
        assert st == 400, (name, body)
    assert http.call("POST", "/users", {"name": "ok", "password": "Pw-long-enough",
                                        "uid": -1})[0] == 400
    assert http.call("POST", "/users", {"name": "ok", "password": 5, "uid": 1})[0] == 400
    assert http.call("POST", "/shares", {"name": "/a/../b"})[0] == 400
    st, body = http.call("POST", "/shares", {"name": "/d", "durability": "eventually"})
    assert st == 400 and "writeback, local, remote" in json.dumps(body), body
    assert http.call("PATCH", "/shares/export", {"durability": "sometimes"})[0] == 400
    assert http.call("POST", "/users", raw=b"{not json")[0] == 400
    assert http.call("POST", "/users", raw=b"[1, 2]")[0] == 400
    assert http.call("POST", "/users", raw=b"{" + b" " * 70000 + b"}")[0] == 413
    st, users = http.call("GET", "/users")
    assert st == 200 and [u["name"] for u in users] == ["admin"]


def test_openapi_document_matches_the_routes(api):
    srv, http = api
    st, doc = http.call("GET", "/openapi.json", token="")
    assert st == 200 and doc["openapi"].startswith("3.")
    from dittofs.control.api import Api
    served = set()
    for rule in Api.app.url_map.iter_rules():
        path = rule.rule.replace("<path:name>", "{name}")
        for arg in ("name", "group", "user", "kind", "key"):
            path = path.replace(f"<{arg}>", "{" + arg + "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented


def test_shares_live_with_real_clients_and_persisted(request, api):
    srv, http = api
    http.login("admin", ADMIN_PW)
    assert http.call("POST", "/users", {"name": "erin", "password": "Erin-pw-12",
                                        "uid": 2500})[0] == 201
    st, share = http.call("POST", "/shares", {"name": "/team", "root_squash": False})
    assert st == 201, share
    if HAVE_SMBCLIENT:
        r = subprocess.run(["smbclient", "//127.0.0.1/team", "-p", str(srv.smb_port), "-U",
                            "erin%Erin-pw-12", "-c", "mkdir made-by-erin"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    if HAVE_SMBCLIENT and HAVE_LIBNFS:
        url = f"nfs://127.0.0.1/team?version=3&nfsport={srv.port}&mountport={srv.port}"
        listing = subprocess.run(["nfs-ls", url], capture_output=True, text=True,
                                 timeout=60).stdout
        line = next(x for x in listing.splitlines() if x.endswith(" made-by-erin"))
        assert line.split()[2] == "2500", line  # erin's uid, as NFS sees it
    assert http.call("DELETE", "/shares/team")[0] == 204
    if HAVE_SMBCLIENT:
        r = subprocess.run(["smbclient", "//127.0.0.1/team", "-p", str(srv.smb_port), "-U",
                            "erin%Erin-pw-12", "-c", "ls"], capture_output=True, text=True,
                           timeout=60)
        assert "NT_STATUS_BAD_NETWORK_NAME" in r.stdout + r.stderr
    assert http.call("DELETE", "/shares/export")[0] == 409  # from the configuration file
    assert http.call("POST", "/shares", {"name": "/kept"})[0] == 201
    from tests.support.server import restart
    restart(srv)  # users and shares come back from the database
    wait_ready(http)
    st, ready = http.call("GET", "/health/ready", token="")
    assert st == 200 and "/kept" in ready["shares"] and "/team" not in ready["shares"]
    http.login("erin", "Erin-pw-12")


def test_login_failures_are_rate_limited(request):
    srv, http = start(request, "sqlite", limit=3)
    try:
        for _ in range(3):
            assert http.call("POST", "/auth/login", {"username": "admin", "password": "x"},
                             token="")[0] == 401
        st, body = http.call("POST", "/auth/login", {"username": "admin",
                                                     "password": ADMIN_PW}, token="")
        assert st == 429 and "too many" in body["error"]["message"]
        log = srv.log_text()
        assert ADMIN_PW not in log and SECRET not in log
    finally:
        stop_and_check(srv)


def test_generated_admin_password_must_be_changed_first(request, tmp_path):
    port = free_port()
    srv = ServerProcess({"metadata_stores": {"default": {"type": "memory"}},
                         "block_stores": {"default": {"type": "memory"}},
                         "api": {"enabled": True, "port": port, "jwt_secret": SECRET}}).start()
    try:
        http = Http(port)
        deadline = time.monotonic() + 30
        pw_file = srv.dir / "data" / "initial-admin-password"
        while not pw_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        import stat as st_mod
        assert st_mod.S_IMODE(pw_file.stat().st_mode) == 0o600
        generated = pw_file.read_text().strip()
        assert generated not in srv.log_text()
        wait_ready(http)
        body = http.login("admin", generated)
        assert body["must_change_password"] is True
        st, err = http.call("GET", "/users")
        assert st == 403 and "changed first" in err["error"]["message"]
        assert http.call("POST", "/users/admin/password",
                         {"old_password": generated, "new_password": "Brand-new-pw-1"})[0] == 204
        body = http.login("admin", "Brand-new-pw-1")
        assert body["must_change_password"] is False
        assert http.call("GET", "/users")[0] == 200
    finally:
        stop_and_check(srv)


def test_stores_adapters_and_settings_live(request):
    srv, http = start(request, "sqlite")
    try:
        http.login("admin", ADMIN_PW)
        assert http.call("POST", "/stores/metadata", {"name": "scratch", "type": "memory"})[0] \
            == 201
        assert http.call("POST", "/stores/block", {"name": "scratchb", "type": "memory"})[0] \
            == 201
        assert http.call("POST", "/stores/block", {"name": "bad", "type": "tape"})[0] == 400
        assert http.call("POST", "/stores/metadata", {"name": "scratch",
                                                      "type": "memory"})[0] == 409
        st, stores = http.call("GET", "/stores/metadata")
        assert {"name": "scratch", "type": "memory", "source": "api"} in stores
        st, share = http.call("POST", "/shares", {"name": "/onscratch",
                                                  "metadata_store": "scratch",
                                                  "block_store": "scratchb"})
        assert st == 201, share
        assert http.call("DELETE", "/stores/metadata/scratch")[0] == 409  # in use
        # move SMB to another port while the server runs
        new_port = free_port()
        st, body = http.call("PATCH", "/adapters/smb", {"port": new_port})
        assert st == 200 and body == {"type": "smb", "enabled": True, "port": new_port}
        st, adapters = http.call("GET", "/adapters")
        assert {"type": "smb", "enabled": True, "port": new_port} in adapters
        if HAVE_SMBCLIENT:
            r = subprocess.run(["smbclient", "//127.0.0.1/onscratch", "-p", str(new_port),
                                "-U", "alice%Alice-pw-1", "-c", "mkdir moved"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
            r = subprocess.run(["smbclient", "//127.0.0.1/onscratch", "-p",
                                str(srv.smb_port), "-U", "alice%Alice-pw-1", "-c", "ls"],
                               capture_output=True, text=True, timeout=60)
            assert "NT_STATUS_CONNECTION_REFUSED" in r.stdout + r.stderr
        assert http.call("PATCH", "/adapters/nfs", {"enabled": False})[0] == 200
        import socket
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        assert http.call("PATCH", "/adapters/nfs", {"enabled": True})[0] == 200
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        assert http.call("PUT", "/settings/server.log_level", {"value": "loud"})[0] == 400
        assert http.call("PUT", "/settings/server.log_level", {"value": "debug"})[0] == 200
        assert http.call("GET", "/settings") == (200, {"server.log_level": "debug"})
        st, body = http.call("PATCH", "/shares/onscratch", {"read_only": True})
        assert st == 200 and body["read_only"] is True
        from tests.support.server import restart
        srv.smb_port = new_port  # what the server must come back on
        restart(srv)  # the store, the share and the SMB port come back from the database
        wait_ready(http)
        st, ready = http.call("GET", "/health/ready", token="")
        assert "/onscratch" in ready["shares"]
        http.login("admin", ADMIN_PW)
        assert {"type": "smb", "enabled": True, "port": new_port} in http.call(
            "GET", "/adapters")[1]
        if HAVE_SMBCLIENT:
            r = subprocess.run(["smbclient", "//127.0.0.1/onscratch", "-p", str(new_port),
                                "-U", "alice%Alice-pw-1", "-c", "mkdir refused"],
                               capture_output=True, text=True, timeout=60)
            assert "NT_STATUS_MEDIA_WRITE_PROTECTED" in r.stdout + r.stderr or \
                "NT_STATUS_ACCESS_DENIED" in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        stop_and_check(srv)
