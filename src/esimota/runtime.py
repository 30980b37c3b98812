"""Process-wide plumbing shared by the commands: the database URL, pools, migrations on start."""

from __future__ import annotations

import asyncpg

from . import config
from .store import embedded, migrate


def database_url() -> str:
    """DATABASE_URL, else the embedded cluster under ESIMOTA_HOME (started if it is not running)."""
    return embedded.database_url(config.home())


async def open_pool(url: str | None = None, *, min_size: int = 1, max_size: int = 10,
                    run_migrations: bool = True) -> asyncpg.Pool:
    """A pool on the platform's database, migrated to the newest schema first."""
    url = url or database_url()
    if run_migrations:
        await migrate.migrate_url(url)
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
