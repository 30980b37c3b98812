"""The audit log (§6.1, R1, R28): who did what, when; never a secret in `detail`."""

from __future__ import annotations

import json
from typing import Any

INSERT = "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4::jsonb)"


async def record(db: Any, actor: str, action: str, target: str | None = None, **detail: Any) -> None:
    await db.execute(INSERT, actor, action, target, json.dumps(detail, ensure_ascii=False, default=str))
