"""Logging: text or JSON lines, a level per component, and secrets scrubbed from events.

twistd builds its log observer after the service tree, so ``twistd --logger
dittofs.log.observer dittofs ...`` (what scripts/run and the systemd unit use) gets the
observer for the configuration ``makeService`` loaded.  SIGHUP calls ``apply`` again.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    jsonFileLogObserver,
    textFileLogObserver,
)

LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
          "error": LogLevel.error}
REDACTED = "***"

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_secrets: set[str] = set()
_format = "text"


def apply(config: Any) -> None:
    """Take levels, format and the secrets to scrub from ``config`` (a dittofs Config)."""
    global _format
    server = config.server
    _format = server.log_format
    _predicate.defaultLogLevel = LEVELS[server.log_level]
    _predicate.clearLogLevels()  # takes the default set just above as the root level
    for namespace, level in server.log_levels.items():
        _predicate.setLogLevelForNamespace(namespace, LEVELS[level])
    _secrets.clear()
    _secrets.update(secrets_of(config))


def enabled_for(namespace: str, level: str) -> bool:
    """Whether events of ``level`` from ``namespace`` would be logged."""
    return _predicate.logLevelForNamespace(namespace) <= LEVELS[level]


def secrets_of(config: Any) -> set[str]:
    """Values from the configuration that must never appear in a log."""
    out: set[str] = set()
    for stores in (config.metadata_stores, config.block_stores):
        for st in stores.values():
            for key in ("secret_key", "access_key", "password"):
                if st.options.get(key):
                    out.add(str(st.options[key]))
            url = str(st.options.get("url") or "")
            if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
                out.add(url.split("@", 1)[0].split("//", 1)[-1].split(":", 1)[1])
    if getattr(config, "api", None) is not None and config.api.jwt_secret:
        out.add(config.api.jwt_secret)
    for user in getattr(config, "users", ()):
        if user.nt_hash:
            out.add(user.nt_hash)
            out.add(user.nt_hash.upper())
    return {s for s in out if len(s) >= 4}


def scrub(value: Any) -> Any:
    if isinstance(value, str) and _secrets:
        for s in _secrets:
            if s in value:
                value = value.replace(s, REDACTED)
    return value


class ScrubbingObserver:
    """Replaces secret values in every string field of an event before passing it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, event: dict) -> None:
        if _secrets:
            event = {k: scrub(v) if isinstance(v, str) else v for k, v in event.items()}
            failure = event.get("log_failure")
            if failure is not None:
                event["log_failure_text"] = scrub(failure.getTraceback())
                event.pop("log_failure")
                event["log_format"] = (event.get("log_format") or "") + "\n{log_failure_text}"
        self.inner(event)


def observer() -> Any:
    """The log observer twistd should use (``--logger dittofs.log.observer``)."""
    stream: Any = sys.stdout
    path = os.environ.get("DITTOFS_LOGFILE")  # set by `dittofs start --daemon`
    if path:
        stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives on
    out = jsonFileLogObserver(stream) if _format == "json" else textFileLogObserver(stream)
    return ScrubbingObserver(FilteringLogObserver(out, [_predicate]))
