"""Alerts and the blacklist as monitoring reads them (R12, R32): notifications grouped per detector run."""

from __future__ import annotations

from typing import Any

# Claim the alerts not yet notified (a concurrent pass skips them), mark them, and queue ONE notification
# listing them all; ref_id is the group's last alert id, so a group is queued once.
QUEUE_DIGEST = """
WITH fresh AS (
    SELECT a.id FROM alerts a WHERE a.notified_at IS NULL ORDER BY a.id LIMIT $1 FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE alerts a SET notified_at = now() FROM fresh WHERE a.id = fresh.id
    RETURNING a.id, a.kind, a.severity, a.subject, a.detail, a.opened_at, a.closed_at, a.chip_id, a.number_id
)
INSERT INTO notifications (source, ref_id, payload)
SELECT 'alerts', max(m.id), jsonb_build_object('source', 'alerts', 'count', count(*), 'alerts', jsonb_agg(
    jsonb_build_object('id', m.id, 'kind', m.kind, 'severity', m.severity, 'subject', m.subject,
                       'eid', c.eid, 'msisdn', n.msisdn, 'detail', m.detail, 'opened_at', m.opened_at,
                       'closed_at', m.closed_at) ORDER BY m.id))
FROM marked m LEFT JOIN chips c ON c.id = m.chip_id LEFT JOIN numbers n ON n.id = m.number_id
HAVING count(*) > 0
ON CONFLICT (source, ref_id) DO NOTHING"""
DIGEST_MAX = 10000  # alerts in one post; a larger run goes out in several

# R32 at HELLO: the blacklist entries added since a time (None: all), read once per group of HELLOs
BLACKLIST_SINCE = "SELECT kind, value, created_at FROM blacklist WHERE $1::timestamptz IS NULL OR created_at >= $1"


async def queue_digest(conn: Any, limit: int) -> int:
    """Up to `limit` alerts not notified yet, queued as one notification; how many were queued."""
    return int((await conn.execute(QUEUE_DIGEST, limit)).split()[-1])


async def blacklist_since(conn: Any, since: Any) -> list[Any]:
    """Records (kind, value, created_at) of the blacklist entries made since `since` (None: all)."""
    return await conn.fetch(BLACKLIST_SINCE, since)
