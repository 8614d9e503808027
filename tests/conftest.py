from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL cluster for the whole run; tests isolate themselves by schema."""
    from tests.support.postgres import PostgresCluster, pg_bindir
    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian package postgresql)")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def s3():
    """A real S3-compatible endpoint (moto's standalone server) on 127.0.0.1."""
    from tests.support.s3 import MotoServer
    server = MotoServer().start()
    yield server
    server.stop()
