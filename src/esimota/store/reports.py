"""The reports' queries (§8.3.2, §10.3, R24, R29, R33, R34): counts over tasks, exceptions, calls, numbers.

Each function returns asyncpg Records with the columns its statement names.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

EXCEPTION_STATS = """
SELECT class, severity, upper(split_part(kind, ':', 1)) AS kind, count(*) AS n,
       count(*) FILTER (WHERE closed_at IS NOT NULL AND closed_at <= deadline_at) AS in_time,
       count(*) FILTER (WHERE closed_at IS NOT NULL OR deadline_at < $3) AS due,
       count(*) FILTER (WHERE closed_at IS NULL) AS still_open,
       count(*) FILTER (WHERE reported_at IS NOT NULL AND reported_at <= opened_at + interval '1 hour') AS reported_1h,
       count(*) FILTER (WHERE report IS NOT NULL AND closed_at <= coalesce(reported_at, opened_at) + interval '24 hours')
           AS report_24h
FROM exceptions WHERE opened_at >= $1 AND opened_at < $2 GROUP BY 1, 2, 3"""
APPLIES = """
SELECT count(*) FROM task_events WHERE operation IN ('apply', 'apply_rejected') AND at >= $1 AND at < $2"""
WRITES = """
SELECT count(*) FILTER (WHERE state = 4) AS ok, count(*) AS total FROM tasks
WHERE state IN (4, 5) AND finished_at >= $1 AND finished_at < $2"""
CALLS = """
SELECT count(*) AS total, count(*) FILTER (WHERE code = 200) AS ok,
       count(*) FILTER (WHERE code >= 400 AND code < 500) AS client_errors, count(*) FILTER (WHERE code >= 500) AS server_errors
FROM api_calls WHERE at >= $1 AND at < $2"""
BY_PROVINCE = """
SELECT n.province_code, p.name, count(*) AS users FROM numbers n JOIN provinces p ON p.code = n.province_code
WHERE n.status = 'bound' AND n.opened_at < $1 GROUP BY 1, 2 ORDER BY 1"""
BY_FIELD = """
SELECT coalesce(pr.application_field, '未分类') AS field, count(*) AS users
FROM numbers n JOIN chips c ON c.id = n.chip_id LEFT JOIN projects pr ON pr.id = c.project_id
WHERE n.status = 'bound' AND n.opened_at < $1 GROUP BY 1 ORDER BY 2 DESC, 1"""
NEW_WRITES = """
SELECT to_char(write_time AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month, count(*) AS writes
FROM tasks WHERE state = 4 AND write_time >= $1 AND write_time < $2 GROUP BY 1 ORDER BY 1"""
INCIDENTS = """
SELECT 'exception' AS source, upper(split_part(kind, ':', 1)) AS kind, count(*) AS n FROM exceptions
WHERE upper(split_part(kind, ':', 1)) = ANY($3::text[]) AND opened_at >= $1 AND opened_at < $2 GROUP BY 2
UNION ALL
SELECT 'alert', kind, count(*) FROM alerts WHERE kind = ANY($4::text[]) AND opened_at >= $1 AND opened_at < $2
GROUP BY 2 ORDER BY 1, 2"""
OPEN_PROBLEMS = """
SELECT upper(split_part(kind, ':', 1)) AS kind, severity, count(*) AS n, min(opened_at) AS oldest FROM exceptions
WHERE opened_at < $1 AND (closed_at IS NULL OR closed_at >= $1) GROUP BY 1, 2 ORDER BY 3 DESC"""
SUBSCRIBERS = """
SELECT n.msisdn, n.iccid, c.eid, coalesce(c.imei, '') AS imei, n.province_code, array_to_string(n.services, '+') AS services,
       cl.client_id, cl.name AS client_name, coalesce(pr.name, '') AS project,
       coalesce(pr.application_field, '未分类') AS application_field, c.chip_model,
       to_char(n.opened_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS opened_at
FROM numbers n JOIN chips c ON c.id = n.chip_id LEFT JOIN clients cl ON cl.id = n.client_id
LEFT JOIN projects pr ON pr.id = c.project_id
WHERE n.status = 'bound' AND n.opened_at < $1 ORDER BY n.msisdn"""


async def exception_stats(db: Any, start: dt.datetime, end: dt.datetime, at: dt.datetime) -> list[Any]:
    """Exceptions opened in [start, end) per class, severity and kind, with due and in-time counts at `at`."""
    return await db.fetch(EXCEPTION_STATS, start, end, at)


async def applies(db: Any, start: dt.datetime, end: dt.datetime) -> int:
    return await db.fetchval(APPLIES, start, end)


async def writes(db: Any, start: dt.datetime, end: dt.datetime) -> Any:
    """A Record (ok, total) of the writes finished in the period."""
    return await db.fetchrow(WRITES, start, end)


async def calls(db: Any, start: dt.datetime, end: dt.datetime) -> Any:
    """A Record of the API calls of the period: total, ok, server_errors and the rest of CALLS."""
    return await db.fetchrow(CALLS, start, end)


async def by_province(db: Any, end: dt.datetime) -> list[Any]:
    return await db.fetch(BY_PROVINCE, end)


async def by_field(db: Any, end: dt.datetime) -> list[Any]:
    return await db.fetch(BY_FIELD, end)


async def new_writes(db: Any, start: dt.datetime, end: dt.datetime) -> list[Any]:
    return await db.fetch(NEW_WRITES, start, end)


async def incidents(db: Any, start: dt.datetime, end: dt.datetime, exception_kinds: list[str],
                    alert_kinds: list[str]) -> list[Any]:
    return await db.fetch(INCIDENTS, start, end, exception_kinds, alert_kinds)


async def open_problems(db: Any, end: dt.datetime) -> list[Any]:
    return await db.fetch(OPEN_PROBLEMS, end)


async def subscribers(db: Any, cutoff: dt.datetime) -> list[Any]:
    """Every bound number as of `cutoff`, in the columns of SUBSCRIBERS (no IMSI, Ki or OPc, R34)."""
    return await db.fetch(SUBSCRIBERS, cutoff)
