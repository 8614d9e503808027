"""Control-plane migrations: from an empty database to head, and an upgrade from the
previous revision that keeps the data; the ORM models describe the head schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from dittofs.control import auth
from dittofs.control.db import current_revision, make_engine, migrate
from dittofs.control.models import Base


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    else:
        import uuid

        import psycopg
        pg = request.getfixturevalue("postgres")
        schema = "mig_" + uuid.uuid4().hex[:8]
        with psycopg.connect(pg.url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"create schema {schema}")
        eng = make_engine(pg.url.replace("+psycopg", "") +
                          f"?options=-csearch_path%3D{schema}")
    yield eng
    eng.dispose()


def test_empty_to_head_matches_the_models(engine):
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == "0002"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff
    names = set(inspect(engine).get_table_names())
    assert {"users", "groups", "memberships", "shares", "share_permissions",
            "metadata_stores", "block_stores", "adapters", "settings"} <= names


def test_upgrade_from_the_previous_revision_keeps_users(engine):
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    pw, nt = auth.hash_password("Old-user-pw")
    with engine.begin() as conn:
        conn.execute(text("insert into users (name, uid, gid, password_hash, nt_hash, "
                          "is_admin, created_at) values ('old', 7, 7, :pw, :nt, false, "
                          "CURRENT_TIMESTAMP)"), {"pw": pw, "nt": nt})
    assert "settings" not in inspect(engine).get_table_names()
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(text("select name, uid, password_hash, must_change_password "
                                "from users")).one()
    assert row[0] == "old" and row[1] == 7 and auth.verify_password(row[2], "Old-user-pw")
    assert row[3] in (False, 0)  # the new column's default
    assert "settings" in inspect(engine).get_table_names()


def test_passwords_and_tokens():
    pw, nt = auth.hash_password("Password")
    assert pw.startswith("$argon2id$") and "Password" not in pw
    assert nt == "a4f49c406510bdcab6824ee7c30fd852"  # the NT hash SMB checks against
    assert auth.verify_password(pw, "Password") and not auth.verify_password(pw, "password")
    with pytest.raises(ValueError):
        auth.Tokens(b"short")
    t = auth.Tokens(b"k" * 32, access_ttl=60)
    claims = t.verify(t.issue("alice", False))
    assert claims["sub"] == "alice" and claims["adm"] is False
    with pytest.raises(auth.TokenError):
        t.verify(t.issue("alice", False), "refresh")
    with pytest.raises(auth.TokenError):
        auth.Tokens(b"x" * 32).verify(t.issue("alice", True))
