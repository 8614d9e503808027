from __future__ import annotations

import pytest

from dittofs.config import ConfigError, load


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults():
    cfg = load(None, {})
    assert cfg.nfs.port == 12049 and [s.name for s in cfg.shares] == ["/export"]
    assert cfg.shares[0].root_squash and cfg.shares[0].root.mode == 0o777


def test_example_config_loads():
    from pathlib import Path
    cfg = load(Path(__file__).resolve().parents[2] / "etc" / "dittofs.yaml", {})
    assert cfg == load(None, {})  # the example documents exactly the defaults


def test_env_overrides(tmp_path):
    cfg = load(write(tmp_path, "nfs: {port: 1}\n"), {"DITTOFS_NFS__PORT": "2049",
                                                      "DITTOFS_SERVER__LOG_LEVEL": "debug",
                                                      "DITTOFS_ADMIN_INITIAL_PASSWORD": "x"})
    assert cfg.nfs.port == 2049 and cfg.server.log_level == "debug"


@pytest.mark.parametrize("text,key", [
    ("nfs: {port: 70000}", "nfs.port"),
    ("nfs: {port: [1]}", "nfs.port"),
    ("nfs: {bogus: 1}", "nfs.bogus"),
    ("shares: [{name: export}]", "shares[0].name"),
    ("shares: [{name: /a}, {name: /a}]", "shares[1].name"),
    ("shares: [{name: /a, block_store: x}]", "shares[0].block_store"),
    ("shares: [{name: /a, allowed_clients: [nonsense]}]", "shares[0].allowed_clients"),
    ("metadata_stores: {default: {type: cassandra}}", "metadata_stores.default.type"),
    ("server: {log_level: loud}", "server.log_level"),
    ("- just a list", "config"),
    ("nfs: {port: 1", "config"),
])
def test_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text), {})
    assert str(e.value).startswith(key)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.yaml", {})
