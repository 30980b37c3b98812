"""Process-wide plumbing shared by the commands: the database URL, pools, migrations on start."""

from __future__ import annotations

import asyncpg

from . import config
from .store import embedded, migrate


def database_url() -> str:
    """DATABASE_URL, else the embedded cluster under ESIMOTA_HOME (started if it is not running)."""
    return embedded.database_url(config.home())


class PooledConnection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query (one round trip saved per acquire).

    The reset (UNLISTEN *, RESET ALL, advisory unlock, CLOSE ALL) is only needed by code that leaves
    session state on a connection; here listeners and the migration lock use connections of their own,
    and session settings are SET LOCAL. An open transaction is still rolled back on release by asyncpg.
    """

    def get_reset_query(self) -> str:
        return ""


async def open_pool(url: str | None = None, *, min_size: int = 1, max_size: int = 10,
                    run_migrations: bool = True) -> asyncpg.Pool:
    """A pool on the platform's database, migrated to the newest schema first."""
    url = url or database_url()
    if run_migrations:
        await migrate.migrate_url(url)
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                     connection_class=PooledConnection)
