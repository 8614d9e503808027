"""ControlPlane: the control-plane database behind the running server.  At start it
migrates the schema, creates the first admin, and feeds the runtime what the database
holds (SMB users, shares); the REST API changes both the database and the runtime."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select
from twisted.application.service import Service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.web.server import Site

from dittofs.control import auth
from dittofs.control import models as m

# Imported here, with the service (before the reactor runs), not when the API starts to
# listen: Klein's import alone held the reactor ~0.25 s while clients were already served.
from dittofs.control.api import Api
from dittofs.control.db import Database, default_url
from dittofs.smb.users import User as SmbUser

log = Logger(namespace="dittofs.control")
ADMIN_ENV = "DITTOFS_ADMIN_INITIAL_PASSWORD"


def jwt_secret(cfg: Any, data_dir: Path) -> bytes:
    """The configured secret, or one generated once and kept (0600) in the data dir."""
    if cfg.api.jwt_secret:
        return cfg.api.jwt_secret.encode()
    path = data_dir / "jwt.secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(48).hex().encode())
    return path.read_bytes().strip()


class ControlPlane(Service):
    name = "control"

    def __init__(self, runtime: Any, reactor: Any = None) -> None:
        self.runtime = runtime
        cfg = runtime.config
        self.cfg = cfg.api
        self.db = Database(cfg.api.database_url or default_url(cfg.data_path))
        self.tokens = auth.Tokens(jwt_secret(cfg, cfg.data_path), cfg.api.access_ttl,
                                  cfg.api.refresh_ttl)
        self.config_users = list(runtime.users.by_name.values())
        self.listening: Any = None
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.ready = False

    def startService(self) -> None:
        super().startService()
        d = defer.ensureDeferred(self._start())
        d.addErrback(self._failed)
        self._starting: defer.Deferred | None = d

    def _failed(self, failure: Any) -> None:
        if not self.running:  # stopped while starting: nothing to report
            return
        log.failure("control plane failed to start", failure)
        self.reactor.stop()

    async def _start(self) -> None:
        await self.db.migrate()
        await self.db.run(self._record_config_stores)
        await self.db.run(self._record_config_shares)
        await self.bootstrap_admin()
        await self.refresh_users()
        await self.load_stores()
        await self.load_shares()
        await self.load_adapters()
        await self.load_settings()
        await self.refresh_acls()
        self.api = Api(self)
        interface = self.cfg.bind.replace(":", "\\:")
        site = Site(self.api.app.resource())
        if self.cfg.tls_cert:
            ep = endpoints.SSL4ServerEndpoint(self.reactor, self.cfg.port, tls_options(self.cfg),
                                              interface=self.cfg.bind)
            scheme = "https"
        else:
            ep = endpoints.serverFromString(self.reactor,
                                            f"tcp:{self.cfg.port}:interface={interface}")
            scheme = "http"
        self.listening = await ep.listen(site)
        host = self.listening.getHost()
        self.ready = True
        log.info("control API listening on {scheme}://{host}:{port}/api/v1", scheme=scheme,
                 host=host.host, port=host.port)

    def _record_config_stores(self, s: Any) -> None:
        """The stores of the configuration file get rows (type only: their options, secrets
        included, stay in the file) so that shares in the database can name them."""
        cfg = self.runtime.config
        for model, stores in ((m.MetadataStore, cfg.metadata_stores),
                              (m.BlockStore, cfg.block_stores)):
            for name, st in stores.items():
                row = s.get(model, name)
                if row is None:
                    s.add(model(name=name, type=st.type, options={"source": "config"}))
                else:
                    row.type = st.type

    def _record_config_shares(self, s: Any) -> None:
        """Shares of the configuration file get rows too, so that permissions can name them;
        they are marked as such and cannot be removed through the API."""
        for sc in self.runtime.config.shares:
            if s.get(m.Share, sc.name) is None:
                s.add(m.Share(name=sc.name, metadata_store=sc.metadata_store,
                              block_store=sc.block_store, options={"source": "config"}))

    async def bootstrap_admin(self) -> None:
        def count(s: Any) -> int:
            return len(s.scalars(select(m.User.id).limit(1)).all())
        if await self.db.run(count):
            return
        password = os.environ.get(ADMIN_ENV)
        generated = not password
        if generated:
            password = auth.generate_password()
        pw_hash, nt = await self.db.pool.run(auth.hash_password, password)

        def add(s: Any) -> None:
            s.add(m.User(name="admin", uid=0, gid=0, password_hash=pw_hash, nt_hash=nt,
                         is_admin=True, must_change_password=generated))
        await self.db.run(add)
        if not generated:
            log.info("admin user created with the password from {env}", env=ADMIN_ENV)
        elif sys.stderr.isatty():
            sys.stderr.write(f"\ndittofs: admin password (shown once, change it at first "
                             f"login): {password}\n\n")
        else:
            path = self.runtime.config.data_path / "initial-admin-password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
            log.warn("admin user created with a generated password, written to {path} "
                     "(mode 0600); it must be changed at first login", path=str(path))

    async def refresh_users(self) -> None:
        """SMB users: those of the configuration file, then those of the database."""
        def load(s: Any) -> list[SmbUser]:
            groups: dict[int, list[int]] = {}
            for uid, gid in s.execute(select(m.Membership.user_id, m.Group.gid).join(
                    m.Group, m.Group.id == m.Membership.group_id)):
                groups.setdefault(uid, []).append(gid)
            return [SmbUser(u.name, u.uid, u.gid, tuple(groups.get(u.id, ())),
                            bytes.fromhex(u.nt_hash)) for u in s.scalars(select(m.User))]
        users = await self.db.run(load)
        names = {u.name.lower() for u in users}
        self.runtime.users.replace(
            [u for u in self.config_users if u.name.lower() not in names] + users)

    async def refresh_acls(self) -> None:
        """Give each served share its permissions from the database (None: it has none)."""
        def load(s: Any) -> dict[str, dict]:
            acls: dict[str, dict] = {}
            rows = s.execute(select(m.SharePermission.share, m.SharePermission.level,
                                    m.User.uid, m.Group.gid)
                             .outerjoin(m.User, m.User.id == m.SharePermission.user_id)
                             .outerjoin(m.Group, m.Group.id == m.SharePermission.group_id))
            for share, level, uid, gid in rows:
                acl = acls.setdefault(share, {"users": {}, "groups": {}})
                if uid is not None:
                    acl["users"][uid] = level
                elif gid is not None:
                    acl["groups"][gid] = level
            return acls
        acls = await self.db.run(load)
        for share in self.runtime.shares:
            share.acl = acls.get(share.name)

    async def load_stores(self) -> None:
        from dittofs.config import StoreConfig
        for model, kind in ((m.MetadataStore, "metadata"), (m.BlockStore, "block")):
            rows = await self.db.run(lambda s, model=model: list(s.scalars(select(model))))
            for row in rows:
                if (row.options or {}).get("source") == "config":
                    continue
                try:
                    self.runtime.registry.declare(kind, row.name,
                                                  StoreConfig(row.type, dict(row.options)))
                except Exception as e:
                    log.error("{kind} store {name} from the database not opened: {err}",
                              kind=kind, name=row.name, err=str(e))

    async def load_adapters(self) -> None:
        rows = await self.db.run(lambda s: list(s.scalars(select(m.Adapter))))
        for row in rows:
            current = self.adapter(row.type)
            running = current is not None
            if running != row.enabled or (current is not None and current.port != row.port):
                await self.apply_adapter(row.type, row.enabled, row.port)

    def adapter(self, kind: str) -> Any:
        try:
            return self.runtime.getServiceNamed(kind)
        except KeyError:
            return None

    async def apply_adapter(self, kind: str, enabled: bool, port: int) -> None:
        """Stop, start or move an adapter while the server runs."""
        old = self.adapter(kind)
        if old is not None:
            await defer.maybeDeferred(old.disownServiceParent)
        if not enabled:
            log.info("{kind} adapter stopped", kind=kind)
            return
        self.runtime.add_adapter(kind, port)

    async def load_settings(self) -> None:
        rows = await self.db.run(lambda s: list(s.scalars(select(m.Setting))))
        for row in rows:
            self.apply_setting(row.key, row.value.get("value"))

    def apply_setting(self, key: str, value: Any) -> None:
        if key == "server.log_level":
            import dataclasses

            from dittofs import log as logging_setup
            cfg = self.runtime.config
            logging_setup.apply(dataclasses.replace(
                cfg, server=dataclasses.replace(cfg.server, log_level=value)))
            self.runtime.refresh_tracing()
            log.info("log level set to {new_level}", new_level=value)

    async def load_shares(self) -> None:
        rows = await self.db.run(lambda s: list(s.scalars(select(m.Share))))
        for row in rows:
            if (row.options or {}).get("source") == "config":
                continue
            if row.name not in self.runtime.shares.by_name:
                try:
                    await self.runtime.add_share(share_config(row))
                except ValueError as e:
                    log.error("share {name} from the database not served: {err}",
                              name=row.name, err=str(e))

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        starting = getattr(self, "_starting", None)
        if starting is not None and not starting.called:
            yield starting  # let the start finish (its errors are dropped when stopping)
        if self.listening is not None:
            yield self.listening.stopListening()
        self.db.close()


def tls_options(cfg: Any) -> Any:
    """Server TLS from PEM files: TLS 1.2 and 1.3 only, Twisted's default cipher list."""
    from twisted.internet import ssl
    with open(cfg.tls_cert, "rb") as fh:
        cert_pem = fh.read()
    with open(cfg.tls_key, "rb") as fh:
        key_pem = fh.read()
    cert = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
    chain = [ssl.Certificate.loadPEM(b) for b in _pem_blocks(cert_pem)[1:]]
    return ssl.CertificateOptions(
        privateKey=cert.privateKey.original, certificate=cert.original,
        extraCertChain=[c.original for c in chain],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2)


def _pem_blocks(pem: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [b.strip() + b"\n" + marker for b in pem.split(marker) if b.strip()]


def share_config(row: m.Share) -> Any:
    from dittofs.config import ShareConfig, _convert
    data = dict(row.options or {})
    data.update(name=row.name, metadata_store=row.metadata_store, block_store=row.block_store)
    return _convert("share", ShareConfig, data)


