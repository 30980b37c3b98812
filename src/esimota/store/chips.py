"""Chips, chip batches, blacklists and the per-chip counters of DESIGN §5.3."""

from __future__ import annotations

from typing import Any

from ..domain.lifecycle import OPEN_STATES, CardState
from ..errors import InvalidArgument, NotFound
from . import crypto
from .keys import aad

BATCH_AAD = b"chip_batches.master_key|"
_OPEN = ", ".join(str(int(s)) for s in sorted(OPEN_STATES))

INSERT_BATCH = "INSERT INTO chip_batches (name, master_key_enc) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id"
SELECT_BATCH = "SELECT id, name, master_key_enc FROM chip_batches WHERE name = $1"
SELECT_CHIP = "SELECT * FROM chips WHERE eid = $1"
# Every state change of a card goes through one of these row locks (DESIGN §3: serialised per chip).
LOCK_CHIP = "SELECT * FROM chips WHERE eid = $1 FOR UPDATE"
LOCK_CHIP_BY_ID = "SELECT * FROM chips WHERE id = $1 FOR UPDATE"
SELECT_CHIP_BY_ID = "SELECT * FROM chips WHERE id = $1"
SET_STATE = "UPDATE chips SET state = $2, state_changed_at = now() WHERE id = $1"
# A partner sees only the chips allocated to it (§6.2.1.1, DESIGN §6): the owner is part of the look-up,
# so another client's chip and an unknown EID take the same path and give the same answer.
SELECT_OWN_CHIP = "SELECT * FROM chips WHERE eid = $1 AND owner_client_id = $2"
LOCK_OWN_CHIP = "SELECT * FROM chips WHERE eid = $1 AND owner_client_id = $2 FOR UPDATE"
ALLOCATION_STATE = f"""
SELECT c.eid, c.owner_client_id, EXISTS (SELECT 1 FROM tasks t WHERE t.chip_id = c.id AND t.state IN ({_OPEN})) AS busy
FROM chips c WHERE c.eid = ANY($1::text[]) ORDER BY c.id FOR UPDATE OF c"""
BATCH_EIDS = "SELECT c.eid FROM chips c JOIN chip_batches b ON b.id = c.batch_id WHERE b.name = $1 ORDER BY c.id"
ALLOCATE = """
UPDATE chips SET owner_client_id = $1, allocated_at = coalesce(allocated_at, now())
WHERE eid = ANY($2::text[]) AND (owner_client_id IS NULL OR owner_client_id = $1) RETURNING eid"""
RELEASE = f"""
UPDATE chips c SET owner_client_id = NULL, allocated_at = NULL
WHERE c.eid = ANY($2::text[]) AND c.owner_client_id = $1
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.chip_id = c.id AND t.state IN ({_OPEN})) RETURNING eid"""
# the chip a number is bound to, else the chip whose open task reserved it
CHIP_OF_NUMBER = f"""
SELECT c.* FROM chips c WHERE c.id = $1
UNION ALL
SELECT c.* FROM tasks t JOIN chips c ON c.id = t.chip_id WHERE $1::bigint IS NULL AND t.number_id = $2
  AND t.state IN ({_OPEN})
LIMIT 1"""
BATCH_COUNTERS = """
INSERT INTO chip_counters (chip_id) SELECT id FROM chips WHERE batch_id = $1 ON CONFLICT DO NOTHING"""
REPROVISION = """
UPDATE chips SET temp_iccid = $2, temp_msisdn = $3, open_time = $4, temp_expires_on = $5 WHERE id = $1"""
# the exception of table 4 (临时号码过期) and the R12 expiry alert are about the old number: both end here
CLOSE_EXPIRED = """
UPDATE exceptions SET closed_at = now(), resolution = $2, closed_by = $3
WHERE chip_id = $1 AND kind = 'TEMP_NUMBER_EXPIRED' AND closed_at IS NULL RETURNING id"""
CLOSE_EXPIRING = """
UPDATE alerts SET closed_at = now(), resolution = $2
WHERE chip_id = $1 AND kind = 'TEMP_NUMBER_EXPIRING' AND closed_at IS NULL"""
SET_ACTIVE_ICCID = "UPDATE chips SET active_iccid = $2 WHERE id = $1"
CHARGE_FLOW = """
UPDATE chips c SET remaining_flow_bytes = greatest(0, c.remaining_flow_bytes - u.used)
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, used) WHERE c.id = u.id"""
BLACKLISTED = """
SELECT kind FROM blacklist WHERE (kind = 'eid' AND value = $1) OR (kind = 'imei' AND value = $2) ORDER BY kind"""
ADD_BLACKLIST = "INSERT INTO blacklist (kind, value, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
EXPIRING = f"""
SELECT eid, temp_iccid, temp_msisdn, network_type, open_time, temp_expires_on, state, owner_client_id
FROM chips WHERE state <> {int(CardState.WRITE_SUCCEEDED)} AND temp_expires_on <= $1 AND ($2::bigint IS NULL OR owner_client_id = $2)
ORDER BY temp_expires_on, eid LIMIT $3"""


async def create_batch(db: Any, name: str, master_key: bytes) -> int:
    """Register a batch and its vendor master key (AES-128, stored encrypted, DESIGN §5.2)."""
    if len(master_key) != 16:
        raise InvalidArgument("a batch master key is 16 bytes (32 hex digits)", reason="MASTER_KEY_INVALID")
    ring = await crypto.keyring(db)
    batch_id = await db.fetchval(INSERT_BATCH, name, ring.encrypt(master_key, aad(BATCH_AAD, name)))
    if batch_id is None:
        raise InvalidArgument(f"batch {name!r} exists already", reason="BATCH_EXISTS")
    return batch_id


async def batch_id(db: Any, name: str) -> int:
    row = await db.fetchrow(SELECT_BATCH, name)
    if row is None:
        raise NotFound(f"no batch named {name!r}", reason="BATCH_NOT_FOUND")
    return row["id"]


async def batch_master_key(db: Any, name: str, blob: bytes) -> bytes:
    return await crypto.decrypt(db, blob, aad(BATCH_AAD, name))


async def get(db: Any, eid: str) -> Any:
    row = await db.fetchrow(SELECT_CHIP, eid)
    if row is None:
        raise NotFound("unknown EID", reason="EID_NOT_FOUND")
    return row


def unknown_eid() -> NotFound:
    """The one answer for an EID the caller may not see, whether it exists or not (DESIGN §6)."""
    return NotFound("unknown EID", reason="EID_NOT_FOUND")


async def own(db: Any, eid: str, client_pk: int, *, lock: bool = False) -> Any:
    """The chip `eid` if it is allocated to client `client_pk` (locked FOR UPDATE with lock=True); else 404."""
    row = await db.fetchrow(LOCK_OWN_CHIP if lock else SELECT_OWN_CHIP, eid, client_pk)
    if row is None:
        raise unknown_eid()
    return row


async def lock(conn: Any, eid: str) -> Any:
    row = await conn.fetchrow(LOCK_CHIP, eid)
    if row is None:
        raise NotFound("unknown EID", reason="EID_NOT_FOUND")
    return row


async def blacklisted(db: Any, eid: str, imei: str | None) -> list[str]:
    """Which of the chip's EID and bound IMEI are blacklisted (R32)."""
    return [r["kind"] for r in await db.fetch(BLACKLISTED, eid, imei or "")]


async def add_blacklist(db: Any, kind: str, value: str, reason: str) -> None:
    await db.execute(ADD_BLACKLIST, kind, value, reason)


async def charge_flow(conn: Any, used: dict[int, int]) -> None:
    """{chip_id: bytes}: test traffic spent by channels, in one statement (R3: never restored)."""
    ids = sorted(used)
    await conn.execute(CHARGE_FLOW, ids, [used[i] for i in ids])


async def by_id(conn: Any, chip_id: int, *, lock: bool = False) -> Any:
    """The chip row of this id (locked FOR UPDATE if asked), or None."""
    return await conn.fetchrow(LOCK_CHIP_BY_ID if lock else SELECT_CHIP_BY_ID, chip_id)


async def set_state(conn: Any, chip_id: int, state: int) -> None:
    """The chip's card state changes (the caller checked the edge against domain/lifecycle)."""
    await conn.execute(SET_STATE, chip_id, state)


async def of_number(db: Any, chip_id: int | None, number_id: int) -> Any:
    """The chip row a number belongs to (bound, or reserved by an open task), or None."""
    return await db.fetchrow(CHIP_OF_NUMBER, chip_id, number_id)


async def expiring(db: Any, until: Any, client_pk: int | None, limit: int) -> list[Any]:
    """Chips whose temporary number expires by `until` (R12), of one client or all; Records of EXPIRING."""
    return await db.fetch(EXPIRING, until, client_pk, limit)


async def batch_eids(conn: Any, batch: str) -> list[str]:
    """The EIDs of a batch, in import order."""
    return [r["eid"] for r in await conn.fetch(BATCH_EIDS, batch)]


async def allocation_state(conn: Any, eids: list[str]) -> list[Any]:
    """Records (eid, owner_client_id, busy) of the chips named (ALLOCATION_STATE)."""
    return await conn.fetch(ALLOCATION_STATE, eids)


async def allocate(conn: Any, client_pk: int, eids: list[str]) -> list[Any]:
    """Records (eid) of the chips whose owner changed to the client."""
    return await conn.fetch(ALLOCATE, client_pk, eids)


async def release(conn: Any, client_pk: int, eids: list[str]) -> list[Any]:
    """Records (eid) of the client's chips released (none with an open task)."""
    return await conn.fetch(RELEASE, client_pk, eids)


async def copy_in(db: Any, rows: list[tuple], columns: list[str], batch_pk: int) -> None:
    """Bulk load of a batch's chips (COPY; the simulator's fleets), with their counters."""
    await db.copy_records_to_table("chips", records=rows, columns=columns)
    await db.execute(BATCH_COUNTERS, batch_pk)


async def reprovision(conn: Any, chip_id: int, iccid: str, msisdn: str, opened: Any, expires: Any) -> None:
    """A new temporary number (R12); UniqueViolationError if another chip holds its ICCID or MSISDN."""
    await conn.execute(REPROVISION, chip_id, iccid, msisdn, opened, expires)


async def close_expiry_notices(conn: Any, chip_id: int, why: str, actor: str) -> list[int]:
    """Close the chip's TEMP_NUMBER_EXPIRED exception and TEMP_NUMBER_EXPIRING alert; the exceptions closed."""
    closed = [r["id"] for r in await conn.fetch(CLOSE_EXPIRED, chip_id, why, actor)]
    await conn.execute(CLOSE_EXPIRING, chip_id, why)
    return closed
