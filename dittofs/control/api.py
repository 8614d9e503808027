"""The REST API under /api/v1 (Klein, in the server's reactor): JWT login and refresh,
users, groups and membership, shares; health; an OpenAPI document of these routes.

Errors are JSON ``{"error": {"status": N, "message": "..."}}``.  Blocking work (SQL,
password hashing) runs in the control plane's pool, never on the reactor.
"""

from __future__ import annotations

import json
import re
from typing import Any

from klein import Klein
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from twisted.logger import Logger

from dittofs.config import DURABILITY
from dittofs.control import auth
from dittofs.control import models as m
from dittofs.smb.sessions import FailureLimiter

log = Logger(namespace="dittofs.control")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
SHARE = re.compile(r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$")
MAX_BODY = 64 * 1024
SHARE_OPTIONS = {"durability": str, "read_only": bool, "root_squash": bool, "all_squash": bool,
                 "anon_uid": int, "anon_gid": int, "guest_ok": bool,
                 "smb_signing_required": bool}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(request: Any, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode()


def _no_content(request: Any) -> bytes:
    request.setResponseCode(204)
    return b""


def _user_named(s: Any, name: str) -> m.User | None:
    return s.scalars(select(m.User).where(m.User.name == name)).first()


def _group_named(s: Any, name: str) -> m.Group | None:
    return s.scalars(select(m.Group).where(m.Group.name == name)).first()


def _body(request: Any) -> dict:
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "request body too large")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _check_durability(options: dict) -> None:
    if options.get("durability", "local") not in DURABILITY:
        raise ApiError(400, "durability: " + ", ".join(DURABILITY))


def _field(data: dict, key: str, typ: type, required: bool = True, default: Any = None) -> Any:
    if key not in data:
        if required:
            raise ApiError(400, f"{key}: required")
        return default
    v = data[key]
    if typ is int and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32):
        raise ApiError(400, f"{key}: expected an integer from 0 to 4294967295")
    if not isinstance(v, typ):
        raise ApiError(400, f"{key}: expected {typ.__name__}")
    if typ is str and len(v) > 1024:
        raise ApiError(400, f"{key}: too long")
    return v


def _name(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ApiError(400, f"{what}: 1-64 letters, digits, '_', '.', '-', starting with a letter")
    return value


def _user_json(u: m.User) -> dict:
    return {"name": u.name, "uid": u.uid, "gid": u.gid, "is_admin": u.is_admin,
            "must_change_password": u.must_change_password}


def _share_json(s: m.Share) -> dict:
    return {"name": s.name, "metadata_store": s.metadata_store, "block_store": s.block_store,
            **(s.options or {})}


class Api:
    app = Klein()

    def __init__(self, control: Any) -> None:
        self.control = control
        self.db = control.db
        self.tokens = control.tokens
        cfg = control.cfg
        self.limiter = FailureLimiter(cfg.login_failure_limit, cfg.login_failure_window)

    # -- plumbing ------------------------------------------------------------------------

    @app.handle_errors(ApiError)
    def _api_error(self, request: Any, failure: Any) -> bytes:
        e = failure.value
        return _json(request, e.status, {"error": {"status": e.status, "message": e.message}})

    @app.handle_errors(Exception)
    def _unexpected(self, request: Any, failure: Any) -> bytes:
        from werkzeug.exceptions import HTTPException
        if isinstance(failure.value, HTTPException):  # no such route (404), method (405)
            code = failure.value.code or 400
            return _json(request, code, {"error": {"status": code,
                                                   "message": failure.value.name}})
        log.failure("API {method} {path} failed", failure,
                    method=request.method.decode("latin-1"), path=request.path.decode("latin-1"))
        return _json(request, 500, {"error": {"status": 500, "message": "internal error"}})

    def _claims(self, request: Any, admin: bool = False, password_change: bool = False) -> dict:
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        if not header.startswith("Bearer "):
            raise ApiError(401, "a bearer token is required")
        try:
            claims = self.tokens.verify(header[7:].strip())
        except auth.TokenError as e:
            raise ApiError(401, f"invalid token: {e}") from None
        if claims.get("pwc") and not password_change:
            raise ApiError(403, "the password must be changed first "
                                "(POST /api/v1/users/{name}/password)")
        if admin and not claims.get("adm"):
            raise ApiError(403, "administrators only")
        return claims

    # -- health and auth -------------------------------------------------------------------

    @app.route("/api/v1/health", methods=["GET"])
    def health(self, request: Any) -> bytes:
        return _json(request, 200, {"status": "ok"})

    @app.route("/api/v1/health/ready", methods=["GET"])
    async def ready(self, request: Any) -> bytes:
        try:
            await self.db.run(lambda s: s.execute(select(1)).scalar())
        except Exception as e:  # the database is what "ready" is about
            return _json(request, 503, {"status": "unavailable", "reason": type(e).__name__})
        return _json(request, 200, {"status": "ready", "shares": sorted(
            s.name for s in self.control.runtime.shares)})

    @app.route("/api/v1/auth/login", methods=["POST"])
    async def login(self, request: Any) -> bytes:
        data = _body(request)
        name = _field(data, "username", str)
        password = _field(data, "password", str)
        host = request.getClientAddress().host
        if self.limiter.blocked(host):
            raise ApiError(429, "too many failed logins; try later")
        user = await self.db.run(
            lambda s: _user_named(s, name))
        ok = user is not None and await self.db.pool.run(auth.verify_password,
                                                         user.password_hash, password)
        if not ok:
            self.limiter.failed(host)
            log.warn("API login failure for {user!r} from {client}", user=name, client=host)
            raise ApiError(401, "wrong user name or password")
        return _json(request, 200, self._token_pair(user.name, user.is_admin,
                                                     user.must_change_password))

    def _token_pair(self, name: str, admin: bool, must_change: bool = False) -> dict:
        return {"access_token": self.tokens.issue(name, admin, must_change=must_change),
                "refresh_token": self.tokens.issue(name, admin, "refresh", must_change),
                "token_type": "Bearer", "expires_in": self.tokens.access_ttl,
                "must_change_password": must_change}

    @app.route("/api/v1/auth/refresh", methods=["POST"])
    async def refresh(self, request: Any) -> bytes:
        token = _field(_body(request), "refresh_token", str)
        try:
            claims = self.tokens.verify(token, "refresh")
        except auth.TokenError as e:
            raise ApiError(401, f"invalid refresh token: {e}") from None
        user = await self.db.run(
            lambda s: _user_named(s, claims["sub"]))
        if user is None:
            raise ApiError(401, "the user no longer exists")
        return _json(request, 200, self._token_pair(user.name, user.is_admin,
                                                     user.must_change_password))

    # -- users ---------------------------------------------------------------------------

    @app.route("/api/v1/users", methods=["GET"])
    async def list_users(self, request: Any) -> bytes:
        self._claims(request, admin=True)
        users = await self.db.run(lambda s: list(s.scalars(select(m.User).order_by(m.User.name))))
        return _json(request, 200, [_user_json(u) for u in users])

    @app.route("/api/v1/users", methods=["POST"])
    async def create_user(self, request: Any) -> bytes:
        self._claims(request, admin=True)
        data = _body(request)
        name = _name(_field(data, "name", str))
        password = _field(data, "password", str)
        if len(password) < 8:
            raise ApiError(400, "password: at least 8 characters")
        uid = _field(data, "uid", int)
        gid = _field(data, "gid", int, False, uid)
        admin = _field(data, "is_admin", bool, False, False)
        pw_hash, nt = await self.db.pool.run(auth.hash_password, password)

        def add(s: Any) -> m.User:
            u = m.User(name=name, uid=uid, gid=gid, password_hash=pw_hash, nt_hash=nt,
                       is_admin=admin, must_change_password=False)
            s.add(u)
            return u
        try:
            u = await self.db.run(add)
        except IntegrityError:
            raise ApiError(409, f"user {name} exists") from None
        await self.control.refresh_users()
        return _json(request, 201, _user_json(u))

    async def _user(self, name: str) -> m.User:
        u = await self.db.run(
            lambda s: _user_named(s, name))
        if u is None:
            raise ApiError(404, f"no user {name}")
        return u

    @app.route("/api/v1/users/<name>", methods=["GET"])
    async def get_user(self, request: Any, name: str) -> bytes:
        claims = self._claims(request)
        if not claims.get("adm") and claims["sub"] != name:
            raise ApiError(403, "administrators only")
        return _json(request, 200, _user_json(await self._user(name)))

    @app.route("/api/v1/users/<name>", methods=["PATCH"])
    async def update_user(self, request: Any, name: str) -> bytes:
        self._claims(request, admin=True)
        data = _body(request)
        changes = {k: _field(data, k, t) for k, t in (("uid", int), ("gid", int),
                                                       ("is_admin", bool)) if k in data}

        def change(s: Any) -> m.User | None:
            u = _user_named(s, name)
            if u is not None:
                for k, v in changes.items():
                    setattr(u, k, v)
            return u
        u = await self.db.run(change)
        if u is None:
            raise ApiError(404, f"no user {name}")
        await self.control.refresh_users()
        await self.control.refresh_acls()
        return _json(request, 200, _user_json(u))

    @app.route("/api/v1/users/<name>", methods=["DELETE"])
    async def delete_user(self, request: Any, name: str) -> bytes:
        claims = self._claims(request, admin=True)
        if claims["sub"] == name:
            raise ApiError(400, "you cannot delete yourself")
        await self._user(name)
        await self.db.run(lambda s: s.execute(delete(m.User).where(m.User.name == name)))
        await self.control.refresh_users()
        return _no_content(request)

    @app.route("/api/v1/users/<name>/password", methods=["POST"])
    async def set_password(self, request: Any, name: str) -> bytes:
        claims = self._claims(request, password_change=True)
        data = _body(request)
        new = _field(data, "new_password", str)
        if len(new) < 8:
            raise ApiError(400, "new_password: at least 8 characters")
        user = await self._user(name)
        if claims["sub"] == name:
            old = _field(data, "old_password", str)
            if not await self.db.pool.run(auth.verify_password, user.password_hash, old):
                raise ApiError(403, "old_password is wrong")
        elif not claims.get("adm"):
            raise ApiError(403, "administrators only")
        pw_hash, nt = await self.db.pool.run(auth.hash_password, new)

        def change(s: Any) -> None:
            u = _user_named(s, name)
            u.password_hash, u.nt_hash = pw_hash, nt
            u.must_change_password = False
        await self.db.run(change)
        await self.control.refresh_users()
        return _no_content(request)

    # -- groups and membership -------------------------------------------------------------

    @app.route("/api/v1/groups", methods=["GET"])
    async def list_groups(self, request: Any) -> bytes:
        self._claims(request, admin=True)

        def load(s: Any) -> list:
            out = []
            for g in s.scalars(select(m.Group).order_by(m.Group.name)):
                members = s.scalars(select(m.User.name).join(
                    m.Membership, m.Membership.user_id == m.User.id).where(
                    m.Membership.group_id == g.id).order_by(m.User.name)).all()
                out.append({"name": g.name, "gid": g.gid, "members": list(members)})
            return out
        return _json(request, 200, await self.db.run(load))

    @app.route("/api/v1/groups", methods=["POST"])
    async def create_group(self, request: Any) -> bytes:
        self._claims(request, admin=True)
        data = _body(request)
        name = _name(_field(data, "name", str))
        gid = _field(data, "gid", int)
        try:
            await self.db.run(lambda s: s.add(m.Group(name=name, gid=gid)))
        except IntegrityError:
            raise ApiError(409, f"group {name} or gid {gid} exists") from None
        return _json(request, 201, {"name": name, "gid": gid, "members": []})

    @app.route("/api/v1/groups/<name>", methods=["DELETE"])
    async def delete_group(self, request: Any, name: str) -> bytes:
        self._claims(request, admin=True)
        gone = await self.db.run(
            lambda s: s.execute(delete(m.Group).where(m.Group.name == name)).rowcount)
        if not gone:
            raise ApiError(404, f"no group {name}")
        await self.control.refresh_users()
        await self.control.refresh_acls()
        return _no_content(request)

    @app.route("/api/v1/groups/<group>/members/<user>", methods=["PUT", "DELETE"])
    async def membership(self, request: Any, group: str, user: str) -> bytes:
        self._claims(request, admin=True)
        adding = request.method == b"PUT"

        def change(s: Any) -> bool:
            g = _group_named(s, group)
            u = _user_named(s, user)
            if g is None or u is None:
                return False
            s.execute(delete(m.Membership).where(m.Membership.user_id == u.id,
                                                 m.Membership.group_id == g.id))
            if adding:
                s.add(m.Membership(user_id=u.id, group_id=g.id))
            return True
        if not await self.db.run(change):
            raise ApiError(404, f"no group {group} or no user {user}")
        await self.control.refresh_users()
        return _no_content(request)

    # -- shares ----------------------------------------------------------------------------

    @app.route("/api/v1/shares", methods=["GET"])
    async def list_shares(self, request: Any) -> bytes:
        self._claims(request)
        rows = {r.name: _share_json(r) for r in await self.db.run(
            lambda s: list(s.scalars(select(m.Share))))}
        out = []
        for share in self.control.runtime.shares:
            out.append(rows.get(share.name) or {"name": share.name})
        return _json(request, 200, sorted(out, key=lambda r: r["name"]))

    @app.route("/api/v1/shares", methods=["POST"])
    async def create_share(self, request: Any) -> bytes:
        self._claims(request, admin=True)
        data = _body(request)
        raw = _field(data, "name", str).strip("/")
        if not SHARE.match(raw) or any(p in (".", "..") for p in raw.split("/")):
            raise ApiError(400, "name: a path like /projects (letters, digits, '_', '.', '-')")
        name = "/" + raw
        reg = self.control.runtime.registry
        ms = _field(data, "metadata_store", str, False, "default")
        bs = _field(data, "block_store", str, False, "default")
        if ms not in reg.metadata_configs or bs not in reg.block_configs:
            raise ApiError(400, "metadata_store/block_store: no store of that name")
        options = {k: _field(data, k, t) for k, t in SHARE_OPTIONS.items() if k in data}
        _check_durability(options)
        if name in self.control.runtime.shares.by_name:
            raise ApiError(409, f"share {name} exists")
        row = m.Share(name=name, metadata_store=ms, block_store=bs, options=options)
        from dittofs.control.service import share_config
        sc = share_config(row)
        try:
            await self.db.run(lambda s: s.add(row))
        except IntegrityError:
            raise ApiError(409, f"share {name} exists") from None
        await self.control.runtime.add_share(sc)
        await self.control.refresh_acls()
        return _json(request, 201, _share_json(row))

    @app.route("/api/v1/shares/<path:name>", methods=["PATCH"])
    async def update_share(self, request: Any, name: str) -> bytes:
        """Change a share's options: it is served again with them (clients reconnect)."""
        self._claims(request, admin=True)
        path = "/" + name.strip("/")
        data = _body(request)
        options = {k: _field(data, k, t) for k, t in SHARE_OPTIONS.items() if k in data}
        _check_durability(options)

        def change(s: Any) -> m.Share | str:
            row = s.get(m.Share, path)
            if row is None:
                return "404"
            if (row.options or {}).get("source") == "config":
                return "409"
            row.options = {**(row.options or {}), **options}
            return row
        row = await self.db.run(change)
        if row == "404":
            raise ApiError(404, f"no share {path}")
        if row == "409":
            raise ApiError(409, f"share {path} comes from the configuration file")
        from dittofs.control.service import share_config
        runtime = self.control.runtime
        if path in runtime.shares.by_name:
            runtime.remove_share(path)
        await runtime.add_share(share_config(row))
        await self.control.refresh_acls()
        return _json(request, 200, _share_json(row))

    @app.route("/api/v1/shares/<path:name>", methods=["DELETE"])
    async def delete_share(self, request: Any, name: str) -> bytes:
        self._claims(request, admin=True)
        path = "/" + name.strip("/")
        def remove(s: Any) -> int:
            row = s.get(m.Share, path)
            if row is None:
                return 404
            if (row.options or {}).get("source") == "config":
                return 409
            s.delete(row)
            return 204
        status = await self.db.run(remove)
        if status == 404:
            raise ApiError(404, f"no share {path}")
        if status == 409:
            raise ApiError(409, f"share {path} comes from the configuration file; remove it "
                                "there")
        if path in self.control.runtime.shares.by_name:
            self.control.runtime.remove_share(path)
        return _no_content(request)

    # -- share permissions -----------------------------------------------------------------

    @app.route("/api/v1/share-permissions", methods=["GET"])
    async def list_permissions(self, request: Any) -> bytes:
        self._claims(request, admin=True)

        def load(s: Any) -> list:
            rows = s.execute(select(m.SharePermission.share, m.SharePermission.level,
                                    m.User.name, m.Group.name)
                             .outerjoin(m.User, m.User.id == m.SharePermission.user_id)
                             .outerjoin(m.Group, m.Group.id == m.SharePermission.group_id)
                             .order_by(m.SharePermission.share))
            return [{"share": sh, "level": lv, **({"user": u} if u else {"group": g})}
                    for sh, lv, u, g in rows]
        return _json(request, 200, await self.db.run(load))

    @app.route("/api/v1/share-permissions", methods=["PUT", "DELETE"])
    async def set_permission(self, request: Any) -> bytes:
        self._claims(request, admin=True)
        data = _body(request)
        share = "/" + _field(data, "share", str).strip("/")
        who_user = _field(data, "user", str, False)
        who_group = _field(data, "group", str, False)
        if (who_user is None) == (who_group is None):  # (keys absent, or both given)
            raise ApiError(400, "give exactly one of user and group")
        removing = request.method == b"DELETE"
        level = None if removing else _field(data, "level", str)
        if level is not None and level not in m.LEVELS:
            raise ApiError(400, f"level: one of {', '.join(m.LEVELS)}")

        def change(s: Any) -> str | None:
            if s.get(m.Share, share) is None:
                return f"no share {share}"
            if who_user is not None:
                row = _user_named(s, who_user)
                col, ident = m.SharePermission.user_id, row.id if row else None
            else:
                row = _group_named(s, who_group)
                col, ident = m.SharePermission.group_id, row.id if row else None
            if ident is None:
                return f"no such {'user' if who_user else 'group'}"
            s.execute(delete(m.SharePermission).where(m.SharePermission.share == share,
                                                      col == ident))
            if not removing:
                s.add(m.SharePermission(share=share, level=level,
                                        user_id=ident if who_user else None,
                                        group_id=ident if who_group else None))
            return None
        err = await self.db.run(change)
        if err:
            raise ApiError(404, err)
        await self.control.refresh_acls()
        return _no_content(request)

    # -- stores ------------------------------------------------------------------------------

    @app.route("/api/v1/stores/<kind>", methods=["GET"])
    async def list_stores(self, request: Any, kind: str) -> bytes:
        self._claims(request, admin=True)
        configs = self._store_configs(kind)
        return _json(request, 200, [{"name": n, "type": c.type,
                                     "source": "config" if n in self._config_stores(kind)
                                     else "api"} for n, c in sorted(configs.items())])

    def _store_configs(self, kind: str) -> dict:
        reg = self.control.runtime.registry
        if kind == "metadata":
            return reg.metadata_configs
        if kind == "block":
            return reg.block_configs
        raise ApiError(404, "stores are 'metadata' or 'block'")

    def _config_stores(self, kind: str) -> Any:
        cfg = self.control.runtime.config
        return cfg.metadata_stores if kind == "metadata" else cfg.block_stores

    @app.route("/api/v1/stores/<kind>", methods=["POST"])
    async def create_store(self, request: Any, kind: str) -> bytes:
        self._claims(request, admin=True)
        self._store_configs(kind)
        data = _body(request)
        name = _name(_field(data, "name", str))
        stype = _field(data, "type", str)
        options = _field(data, "options", dict, False, {})
        if len(json.dumps(options)) > 4096 or "source" in options:
            raise ApiError(400, "options: at most 4 KiB of JSON, no 'source' key")
        from dittofs.config import ConfigError, StoreConfig
        try:
            self.control.runtime.registry.declare(kind, name, StoreConfig(stype, options))
        except ValueError as e:
            raise ApiError(409 if "exists" in str(e) else 400, str(e)) from None
        except ConfigError as e:
            raise ApiError(400, str(e)) from None
        model = m.MetadataStore if kind == "metadata" else m.BlockStore
        await self.db.run(lambda s: s.add(model(name=name, type=stype, options=options)))
        return _json(request, 201, {"name": name, "type": stype, "source": "api"})

    @app.route("/api/v1/stores/<kind>/<name>", methods=["DELETE"])
    async def delete_store(self, request: Any, kind: str, name: str) -> bytes:
        self._claims(request, admin=True)
        configs = self._store_configs(kind)
        if name not in configs:
            raise ApiError(404, f"no {kind} store {name}")
        try:  # refused while a share (its payload pair) uses it
            self.control.runtime.registry.forget(kind, name)
        except ValueError as e:
            raise ApiError(409, str(e)) from None
        model = m.MetadataStore if kind == "metadata" else m.BlockStore
        await self.db.run(lambda s: s.execute(delete(model).where(model.name == name)))
        return _no_content(request)

    # -- adapters and settings -------------------------------------------------------------

    @app.route("/api/v1/adapters", methods=["GET"])
    async def list_adapters(self, request: Any) -> bytes:
        self._claims(request, admin=True)
        out = []
        for kind in ("nfs", "smb"):
            a = self.control.adapter(kind)
            out.append({"type": kind, "enabled": a is not None,
                        "port": a.bound_port() if a is not None else None})
        return _json(request, 200, out)

    @app.route("/api/v1/adapters/<kind>", methods=["PATCH"])
    async def update_adapter(self, request: Any, kind: str) -> bytes:
        self._claims(request, admin=True)
        if kind not in ("nfs", "smb"):
            raise ApiError(404, "adapters are 'nfs' and 'smb'")
        data = _body(request)
        current = self.control.adapter(kind)
        enabled = _field(data, "enabled", bool, False, current is not None)
        default_port = current.port if current is not None else getattr(
            self.control.runtime.config, kind).port
        port = _field(data, "port", int, False, default_port)
        if not 0 < port < 65536:
            raise ApiError(400, "port: 1 to 65535")
        await self.control.apply_adapter(kind, enabled, port)

        def save(s: Any) -> None:
            row = s.get(m.Adapter, kind)
            if row is None:
                s.add(m.Adapter(type=kind, port=port, enabled=enabled, config={}))
            else:
                row.port, row.enabled = port, enabled
        await self.db.run(save)
        return _json(request, 200, {"type": kind, "enabled": enabled, "port": port})

    @app.route("/api/v1/settings", methods=["GET"])
    async def list_settings(self, request: Any) -> bytes:
        self._claims(request, admin=True)
        rows = await self.db.run(lambda s: list(s.scalars(select(m.Setting))))
        return _json(request, 200, {r.key: r.value.get("value") for r in rows})

    @app.route("/api/v1/settings/<key>", methods=["PUT"])
    async def put_setting(self, request: Any, key: str) -> bytes:
        self._claims(request, admin=True)
        allowed = {"server.log_level": ("debug", "info", "warn", "error")}
        if key not in allowed:
            raise ApiError(404, f"settings: {', '.join(sorted(allowed))}")
        value = _body(request).get("value")
        if value not in allowed[key]:
            raise ApiError(400, f"value: one of {', '.join(allowed[key])}")

        def save(s: Any) -> None:
            row = s.get(m.Setting, key)
            if row is None:
                s.add(m.Setting(key=key, value={"value": value}))
            else:
                row.value = {"value": value}
        await self.db.run(save)
        self.control.apply_setting(key, value)
        return _json(request, 200, {key: value})

    @app.route("/api/v1/openapi.json", methods=["GET"])
    def openapi(self, request: Any) -> bytes:
        from dittofs.control.openapi import document
        return _json(request, 200, document())
