"""Shared fixtures: the embedded PostgreSQL (or DATABASE_URL), a fresh migrated database per test."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from esimota.store import migrate as migrations
from esimota.store.embedded import Cluster
from tests.support import databases

ROOT = Path(__file__).resolve().parent.parent
# One at-rest master key for the test process and every platform process it starts: data keys
# wrapped by the one must unwrap in the other.
os.environ.setdefault("ESIMOTA_MASTER_KEY", "5a" * 32)
# Under DATABASE_URL no key is generated (issue 18): the backup and export signing keys are given too.
os.environ.setdefault("ESIMOTA_BACKUP_KEY", "6b" * 32)
os.environ.setdefault("ESIMOTA_EXPORT_SIGNING_KEY", "7c" * 32)


@pytest.fixture(scope="session")
def pg_server_url():
    """A server URL tests may create databases on: DATABASE_URL, else the embedded cluster (stopped
    at the end if this session started it, so a CI run leaves no server behind)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    cluster = Cluster(Path(os.environ.get("ESIMOTA_HOME", ROOT / ".data")).resolve())
    was_running = cluster.running()
    yield cluster.start()
    if not was_running:
        cluster.stop()


@pytest.fixture(scope="session")
async def template_db(pg_server_url: str):
    """One migrated template database per test session; dropped at the end."""
    name = await databases.create(pg_server_url, f"esimota_tpl_{os.getpid()}_")
    await migrations.migrate_url(databases.url_of(pg_server_url, name))
    yield name
    await databases.drop(pg_server_url, name)


@pytest.fixture
async def db_url(pg_server_url: str, template_db: str):
    """A fresh, migrated database of this test's own, dropped afterwards."""
    name = await databases.create(pg_server_url, "esimota_t_", template=template_db)
    yield databases.url_of(pg_server_url, name)
    await databases.drop(pg_server_url, name)


@pytest.fixture
async def pool(db_url: str):
    """An asyncpg pool on the test's own database."""
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=10)
    yield p
    await p.close()
