"""The audit log (§6.1, R1, R28): who did what, when; never a secret in `detail`."""

from __future__ import annotations

import json
from typing import Any

INSERT = "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4::jsonb)"


async def record(db: Any, actor: str, action: str, target: str | None = None, **detail: Any) -> None:
    await db.execute(INSERT, actor, action, target, json.dumps(detail, ensure_ascii=False, default=str))

# The audit log as the console reads it: newest first, keyset pages (id < cursor), by actor and action prefix.
PAGE = """
SELECT id, at, actor, action, target, detail::text AS detail FROM audit_log
WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR left(action, length($2)) = $2)
  AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC LIMIT $4"""


async def page(db: Any, actor: str | None, action: str | None, before: int | None, limit: int) -> list[Any]:
    """Audit entries (R1, R28), newest first, optionally of one actor or action, ids below `before`."""
    return await db.fetch(PAGE, actor, action, before, limit)
