"""Server configuration: one YAML file, every scalar overridable by DITTOFS_* variables.

``DITTOFS_NFS__PORT=2049`` sets ``nfs.port`` (a double underscore separates levels).
Errors name the offending key.  The result is a tree of frozen dataclasses.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import ipaddress
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "DITTOFS_"
METADATA_KINDS = ("memory", "lmdb", "postgres")
BLOCK_KINDS = ("memory", "fs", "s3")
DURABILITY = ("writeback", "local", "remote")


class ConfigError(ValueError):
    """The configuration is invalid; the message starts with the key at fault."""


@dataclass(frozen=True)
class ServerConfig:
    data_dir: str = "~/.local/share/dittofs"
    log_level: str = "info"
    log_format: str = "text"  # text | json (one JSON object per line)
    log_levels: Mapping[str, str] = field(default_factory=dict)  # namespace -> level
    shutdown_timeout: int = 30  # seconds to drain calls and upload before exiting
    busy_poll_us: int = 1000  # after activity, poll without sleeping up to this long (0: off)


@dataclass(frozen=True)
class TracingConfig:
    enabled: bool = False
    endpoint: str = ""  # OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces
    sample_rate: str = "1.0"
    service_name: str = "dittofs"


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = 9090


@dataclass(frozen=True)
class NfsConfig:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 12049
    max_record: int = 4 * 1024 * 1024 + 64 * 1024


@dataclass(frozen=True)
class SmbConfig:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 12445
    signing_required: bool = False
    server_name: str = "DITTOFS"  # NetBIOS name in NTLM challenges
    domain: str = "WORKGROUP"
    max_io: int = 8 * 1024 * 1024  # MaxReadSize/MaxWriteSize offered to 2.1+ clients
    login_failure_limit: int = 5  # failed logons per client address before refusing
    login_failure_window: int = 60  # seconds a failure counts against the address


@dataclass(frozen=True)
class ApiConfig:
    """The control plane: users and shares in a database, managed over a REST API."""

    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8080
    database_url: str = ""  # default: sqlite:///<data_dir>/control.db; or postgresql://...
    jwt_secret: str = ""  # at least 32 bytes; default: generated once, kept in data_dir
    access_ttl: int = 900  # seconds an access token is valid
    refresh_ttl: int = 86400
    login_failure_limit: int = 5  # failed logins per client address before 429 ...
    login_failure_window: int = 60  # ... for this many seconds
    tls_cert: str = ""  # PEM certificate (chain) file: with tls_key, the API speaks HTTPS
    tls_key: str = ""  # PEM private key file


@dataclass(frozen=True)
class UserConfig:
    """An SMB user until the control plane keeps them: the NT hash, never a password."""

    name: str = ""
    uid: int = 1000
    gid: int = 1000
    gids: tuple[int, ...] = ()
    nt_hash: str = ""  # 32 hex digits: python -m dittofs.smb.ntlm_crypto prints it


@dataclass(frozen=True)
class StoreConfig:
    type: str = "memory"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RootConfig:
    uid: int = 0
    gid: int = 0
    mode: int = 0o777


@dataclass(frozen=True)
class ShareConfig:
    name: str = "/export"
    metadata_store: str = "default"
    block_store: str = "default"
    durability: str = "local"
    read_only: bool = False
    root_squash: bool = True
    all_squash: bool = False
    anon_uid: int = 65534
    anon_gid: int = 65534
    allowed_clients: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    guest_ok: bool = False  # SMB anonymous sessions may connect (as anon_uid/anon_gid)
    smb_signing_required: bool = False  # SMB requests to this share must be signed
    root: RootConfig = field(default_factory=RootConfig)

    def networks(self) -> list[Any]:
        return [ipaddress.ip_network(n, strict=False) for n in self.allowed_clients]


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    nfs: NfsConfig = field(default_factory=NfsConfig)
    smb: SmbConfig = field(default_factory=SmbConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    # The embedded default: metadata in LMDB and content in files, both under data_dir.
    metadata_stores: Mapping[str, StoreConfig] = field(
        default_factory=lambda: {"default": StoreConfig("lmdb")})
    block_stores: Mapping[str, StoreConfig] = field(
        default_factory=lambda: {"default": StoreConfig("fs")})
    shares: tuple[ShareConfig, ...] = field(default_factory=lambda: (ShareConfig(),))
    users: tuple[UserConfig, ...] = ()

    @property
    def data_path(self) -> Path:
        return Path(os.path.expanduser(self.server.data_dir))


def _scalar(key: str, typ: Any, value: Any) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value, 0)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{prefix}{sorted(unknown)[0]}: unknown key")
    kwargs = {}
    for name in known:
        if name not in data:
            continue
        key = prefix + name
        value = data[name]
        kwargs[name] = _convert(key, hints[name], value)
    return cls(**kwargs)


def _convert(key: str, typ: Any, value: Any) -> Any:
    origin = typing.get_origin(typ)
    if typ in (bool, int, str):
        return _scalar(key, typ, value)
    if dataclasses.is_dataclass(typ):
        if typ is StoreConfig and isinstance(value, Mapping):
            value = dict(value)
            kind = value.pop("type", "memory")
            return StoreConfig(_scalar(key + ".type", str, kind), value)
        return _build(typ, value, key + ".")
    if origin is tuple:
        inner = typing.get_args(typ)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list")
        return tuple(_convert(f"{key}[{i}]", inner, v) for i, v in enumerate(value))
    if origin is collections.abc.Mapping:
        inner = typing.get_args(typ)[1]
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping")
        return {str(k): _convert(f"{key}.{k}", inner, v) for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported type {typ}")  # pragma: no cover


def _sections() -> frozenset[str]:
    """The top-level keys that are one dataclass of scalars (what DITTOFS_* may set)."""
    hints = typing.get_type_hints(Config)
    return frozenset(f.name for f in fields(Config) if dataclasses.is_dataclass(hints[f.name]))


def _env_overrides(raw: dict, environ: Mapping[str, str]) -> dict:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if path[0] not in _SECTIONS or len(path) != 2:
            continue  # only scalar sections; other DITTOFS_ variables are not config
        raw.setdefault(path[0], {})
        if raw[path[0]] is None:
            raw[path[0]] = {}
        raw[path[0]][path[1]] = value
    return raw


def validate(cfg: Config) -> Config:
    if not 0 <= cfg.nfs.port <= 65535:
        raise ConfigError(f"nfs.port: {cfg.nfs.port} is not a TCP port")
    levels = ("debug", "info", "warn", "error")
    if cfg.server.log_level not in levels:
        raise ConfigError(f"server.log_level: {cfg.server.log_level!r} is not one of "
                          "debug, info, warn, error")
    for namespace, level in cfg.server.log_levels.items():
        if level not in levels:
            raise ConfigError(f"server.log_levels.{namespace}: {level!r} is not one of "
                              "debug, info, warn, error")
    if cfg.server.log_format not in ("text", "json"):
        raise ConfigError(f"server.log_format: {cfg.server.log_format!r} is not text or json")
    if not 0 <= cfg.server.busy_poll_us <= 10_000:
        raise ConfigError("server.busy_poll_us: must be from 0 (off) to 10000")
    try:
        rate = float(cfg.tracing.sample_rate)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"tracing.sample_rate: {cfg.tracing.sample_rate!r} is not a number "
                          "from 0 to 1")
    if cfg.api.jwt_secret and len(cfg.api.jwt_secret.encode()) < 32:
        raise ConfigError("api.jwt_secret: must be at least 32 bytes")
    if bool(cfg.api.tls_cert) != bool(cfg.api.tls_key):
        raise ConfigError("api.tls_cert: give both tls_cert and tls_key, or neither")
    if not 0 <= cfg.api.port <= 65535:
        raise ConfigError(f"api.port: {cfg.api.port} is not a TCP port")
    if not 0 <= cfg.smb.port <= 65535:
        raise ConfigError(f"smb.port: {cfg.smb.port} is not a TCP port")
    if not 64 * 1024 <= cfg.smb.max_io <= 8 * 1024 * 1024:
        raise ConfigError("smb.max_io: must be from 65536 to 8388608")
    names = set()
    for i, u in enumerate(cfg.users):
        if not u.name or u.name.lower() in names:
            raise ConfigError(f"users[{i}].name: {u.name!r} is empty or declared twice")
        names.add(u.name.lower())
        try:
            if len(bytes.fromhex(u.nt_hash)) != 16:
                raise ValueError
        except ValueError:
            raise ConfigError(f"users[{i}].nt_hash: expected 32 hex digits") from None
    if cfg.nfs.max_record < 64 * 1024:
        raise ConfigError("nfs.max_record: must be at least 65536")
    seen = set()
    for i, s in enumerate(cfg.shares):
        key = f"shares[{i}]"
        canonical = "/" + "/".join(p for p in s.name.split("/") if p)
        if not s.name.startswith("/") or s.name != canonical:
            raise ConfigError(f"{key}.name: {s.name!r} must be an absolute path like /export")
        if s.name in seen:
            raise ConfigError(f"{key}.name: {s.name!r} is declared twice")
        seen.add(s.name)
        if s.durability not in DURABILITY:
            raise ConfigError(f"{key}.durability: {s.durability!r} is not one of "
                              f"{', '.join(DURABILITY)}")
        if s.metadata_store not in cfg.metadata_stores:
            raise ConfigError(f"{key}.metadata_store: no store named {s.metadata_store!r}")
        if s.block_store not in cfg.block_stores:
            raise ConfigError(f"{key}.block_store: no store named {s.block_store!r}")
        try:
            s.networks()
        except ValueError as e:
            raise ConfigError(f"{key}.allowed_clients: {e}") from None
    for section, stores, kinds in (("metadata_stores", cfg.metadata_stores, METADATA_KINDS),
                                   ("block_stores", cfg.block_stores, BLOCK_KINDS)):
        for name, st in stores.items():
            if st.type not in kinds:
                raise ConfigError(f"{section}.{name}.type: unknown store type {st.type!r} "
                                  f"(one of {', '.join(kinds)})")
    return cfg


def load(path: str | os.PathLike | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or the defaults when None), apply the environment, validate."""
    raw: Any = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                raw = yaml.safe_load(fh) or {}
        except OSError as e:
            raise ConfigError(f"config: cannot read {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config: {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a mapping")
    raw = _env_overrides(raw, os.environ if environ is None else environ)
    return validate(_build(Config, raw, ""))


_SECTIONS = _sections()
