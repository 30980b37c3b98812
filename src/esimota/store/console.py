"""The console's own records (migration 0017): staff passwords, sessions, sign-in attempts; aggregates its pages chart."""

from __future__ import annotations

# -- staff passwords and sessions (R28) -------------------------------------------------------------
SET_PASSWORD = """
UPDATE staff_accounts SET password_hash = $2, password_set_at = now() WHERE username = $1 RETURNING id"""
# a new password ends every open session of the account
END_SESSIONS_OF = "UPDATE console_sessions SET ended_at = now() WHERE staff_id = $1 AND ended_at IS NULL"
ACCOUNT = "SELECT id, username, roles, password_hash, disabled_at FROM staff_accounts WHERE username = $1"
FAILURES = """
SELECT (SELECT count(*) FROM console_signins WHERE username = $1 AND NOT ok AND at > now() - $3::interval) AS by_user,
       (SELECT count(*) FROM console_signins WHERE address = $2 AND NOT ok AND at > now() - $3::interval) AS by_address"""
ATTEMPT = "INSERT INTO console_signins (username, address, ok) VALUES ($1, $2, $3)"
NEW_SESSION = """
INSERT INTO console_sessions (token_hash, staff_id, csrf, address) VALUES ($1, $2, $3, $4) RETURNING id"""
# a session is good while its account is active and it was used within the idle limit
SESSION = """
SELECT s.id, s.csrf, a.username, a.display_name, a.roles
FROM console_sessions s JOIN staff_accounts a ON a.id = s.staff_id
WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.seen_at > now() - $2::interval AND a.disabled_at IS NULL
  AND (a.tokens_revoked_at IS NULL OR a.tokens_revoked_at < s.created_at)"""
TOUCH_SESSION = "UPDATE console_sessions SET seen_at = now() WHERE id = $1"
TOUCH_ACCOUNT = "UPDATE staff_accounts SET last_active_at = now() WHERE username = $1"
END_SESSION = "UPDATE console_sessions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL"
PURGE_SIGNINS = "DELETE FROM console_signins WHERE at < now() - $1::interval"
PURGE_SESSIONS = "DELETE FROM console_sessions WHERE coalesce(ended_at, seen_at) < now() - $1::interval"

# -- aggregates of the overview, chips and numbers pages (R13, R29) ----------------------------------
# finished writes per hour (24 h) or per day (30 d), China Standard Time; state 4 succeeded, 5 failed
WRITES_BY_SLOT = """
SELECT date_trunc($2, finished_at AT TIME ZONE 'Asia/Shanghai') AS slot,
       count(*) FILTER (WHERE state = 4) AS ok, count(*) FILTER (WHERE state = 5) AS failed
FROM tasks WHERE state IN (4, 5) AND finished_at >= $1 GROUP BY 1 ORDER BY 1"""
CARDS_BY_STATE = "SELECT state, count(*) AS n FROM chips GROUP BY state ORDER BY state"
OPEN_EXCEPTIONS_BY_DEADLINE = " WHERE e.closed_at IS NULL ORDER BY e.deadline_at, e.id LIMIT $1"
BATCH_PROGRESS = """
SELECT b.name AS batch, count(c.id) AS chips,
       count(c.id) FILTER (WHERE c.production_status = 'produced') AS produced,
       count(c.id) FILTER (WHERE c.logistics_status = 'delivered') AS delivered,
       count(c.id) FILTER (WHERE c.state = 4) AS written, b.created_at
FROM chip_batches b LEFT JOIN chips c ON c.batch_id = b.id GROUP BY b.id ORDER BY b.id DESC LIMIT $1"""
NUMBER_INVENTORY = """
SELECT province_code,
       CASE WHEN status = 'available' AND client_id IS NOT NULL THEN 'allocated' ELSE status END AS status,
       count(*) AS n
FROM numbers GROUP BY 1, 2 ORDER BY 1, 2"""
