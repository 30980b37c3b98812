"""Operational numbers: allocation (划拨), reservation for a task, binding to an EID (R5, §5.1.2)."""

from __future__ import annotations

from typing import Any

from ..domain.lifecycle import OPEN_STATES
from ..errors import DomainError
from . import crypto
from .keys import aad

IMSI_AAD = b"numbers.imsi|"
KEYS_AAD = b"numbers.keys|"

# Auto-allocation (R5): any free number of the province not allocated to another client. SKIP LOCKED
# lets concurrent applies take different rows instead of queueing on (or double-booking) one.
PICK_FREE = """
SELECT * FROM numbers
WHERE province_code = $1 AND status = 'available' AND (client_id IS NULL OR client_id = $2)
ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"""
LOCK_BY_ICCID = "SELECT * FROM numbers WHERE iccid = $1 FOR UPDATE"
SELECT_BY_ID = "SELECT * FROM numbers WHERE id = $1"
RESERVE = "UPDATE numbers SET status = 'reserved' WHERE id = $1 AND status = 'available'"
# Giving a reserved number back (DESIGN §3: a write that ends in 5, a cancel): it keeps its client_id,
# so a designated number returns to the client it was allocated to and a pool number to its province.
RELEASE = "UPDATE numbers SET status = 'available' WHERE id = $1 AND status = 'reserved'"
# table 3 无可用省份资源: the province has a number again, so its general exception closes (§8.3.1)
CLOSE_NO_RESOURCE = """
UPDATE exceptions SET closed_at = now(), closed_by = 'platform', resolution = $2
WHERE kind = 'NO_RESOURCE:' || $1 AND closed_at IS NULL AND severity = 'general'
  AND EXISTS (SELECT 1 FROM numbers WHERE province_code = $1 AND status = 'available')"""
# §7.2.2.1 当前可写入: a province is listed while an auto-allocation for this caller can succeed now —
# it is open (writable) and holds a number available to the caller (unallocated, or allocated to it).
WRITABLE_PROVINCES = """
SELECT p.code, p.name FROM provinces p
WHERE p.writable AND EXISTS (SELECT 1 FROM numbers n WHERE n.province_code = p.code AND n.status = 'available'
                             AND (n.client_id IS NULL OR n.client_id = $1))
ORDER BY p.code"""
BOUND_TO = "SELECT msisdn FROM numbers WHERE chip_id = $1"
# A number of the caller's (DESIGN §6): allocated to it, or on a chip of its (bound, or reserved by an
# open task). Another client's number and one that does not exist take this one statement alike, so
# neither the answer nor its timing tells a partner which numbers exist (issue 14).
_OPEN = ", ".join(str(int(s)) for s in sorted(OPEN_STATES))
_MINE = f"""
  AND (n.client_id = $2
       OR EXISTS (SELECT 1 FROM chips c WHERE c.id = n.chip_id AND c.owner_client_id = $2)
       OR (n.chip_id IS NULL AND EXISTS (
             SELECT 1 FROM tasks t JOIN chips c ON c.id = t.chip_id
             WHERE t.number_id = n.id AND t.state IN ({_OPEN}) AND c.owner_client_id = $2)))"""
MINE_BY_MSISDN = "SELECT n.* FROM numbers n WHERE n.msisdn = $1" + _MINE
MINE_BY_ICCID = "SELECT n.* FROM numbers n WHERE n.iccid = $1" + _MINE
ALLOCATE = """
UPDATE numbers SET client_id = $1, allocated_at = coalesce(allocated_at, now())
WHERE iccid = ANY($2::text[]) AND ((client_id IS NULL AND status = 'available') OR client_id = $1)
RETURNING iccid"""
ALLOCATION_STATE = "SELECT iccid, client_id, status FROM numbers WHERE iccid = ANY($1::text[])"


async def give_back(conn: Any, number_id: int, province_code: str | None) -> None:
    """The task's reserved number is available again (DESIGN §3); the province has a number again."""
    if (await conn.execute(RELEASE, number_id)).endswith(" 1") and province_code:
        await replenished(conn, [province_code], "a reserved number was given back")


async def replenished(conn: Any, provinces: list[str], why: str) -> None:
    """Close the NO_RESOURCE exception of each province that has an available number (table 3)."""
    for code in sorted(set(provinces)):
        await conn.execute(CLOSE_NO_RESOURCE, code, f"numbers available again: {why}")


def encrypt_secrets(ring: crypto.KeyRing, iccid: str, imsi: str, ki: bytes, opc: bytes) -> tuple[bytes, bytes]:
    """The stored forms of IMSI and Ki‖OPc, bound to the number's ICCID (DESIGN §2: never in clear)."""
    return (ring.encrypt(imsi.encode(), aad(IMSI_AAD, iccid)),
            ring.encrypt(ki + opc, aad(KEYS_AAD, iccid)))


def imsi_tag(ring: crypto.KeyRing, imsi: str) -> bytes:
    """The IMSI's blind-index tag (migration 0009): one number per IMSI, with the IMSI kept encrypted."""
    return ring.blind("numbers.imsi", imsi.encode())


# Tags of numbers stored before migration 0009, computed from their ciphertexts (in batches).
SELECT_UNTAGGED = "SELECT id, iccid, imsi_enc FROM numbers WHERE imsi_tag IS NULL ORDER BY id LIMIT $1"
SET_TAGS = """
UPDATE numbers n SET imsi_tag = u.tag FROM unnest($1::bigint[], $2::bytea[]) AS u(id, tag) WHERE n.id = u.id"""


HOLDERS = "SELECT iccid, imsi_tag FROM numbers WHERE imsi_tag = ANY($1::bytea[]) ORDER BY iccid"


async def tag_untagged(conn: Any, ring: crypto.KeyRing, batch: int = 5000) -> int:
    """Give every number without an IMSI tag its tag; returns how many. Run inside the caller's
    transaction: two stored numbers with one IMSI (nothing prevented it before 0009) stop it with
    STORED_IMSI_REPEATED naming both ICCIDs, and the caller's transaction changes nothing."""
    done = 0
    while True:
        rows = await conn.fetch(SELECT_UNTAGGED, batch)
        if not rows:
            return done
        tags = [imsi_tag(ring, ring.decrypt(r["imsi_enc"], aad(IMSI_AAD, r["iccid"])).decode()) for r in rows]
        first: dict[bytes, str] = {h["imsi_tag"]: h["iccid"] for h in await conn.fetch(HOLDERS, tags)}
        for r, tag in zip(rows, tags):
            if tag in first:
                raise DomainError(f"numbers {first[tag]} and {r['iccid']} are stored with one IMSI; correct "
                                  "them before importing", reason="STORED_IMSI_REPEATED")
            first[tag] = r["iccid"]
        await conn.execute(SET_TAGS, [r["id"] for r in rows], tags)
        done += len(rows)


async def decrypt_secrets(db: Any, row: Any) -> tuple[str, bytes, bytes]:
    """(IMSI, Ki, OPc) of a number row, for the personalisation script only (DESIGN §5.4)."""
    imsi = (await crypto.decrypt(db, row["imsi_enc"], aad(IMSI_AAD, row["iccid"]))).decode()
    keys = await crypto.decrypt(db, row["keys_enc"], aad(KEYS_AAD, row["iccid"]))
    return imsi, keys[:16], keys[16:]


# -- numbers (asyncpg Records of the numbers table, `SELECT *`) -------------------------------------
async def by_id(conn: Any, number_id: int) -> Any:
    return await conn.fetchrow(SELECT_BY_ID, number_id)


async def pick_free(conn: Any, province_code: str, client_pk: int) -> Any:
    """A free number of the province allocated to the client, locked; None when there is none (R5)."""
    return await conn.fetchrow(PICK_FREE, province_code, client_pk)


async def lock_by_iccid(conn: Any, iccid: str) -> Any:
    return await conn.fetchrow(LOCK_BY_ICCID, iccid)


async def reserve(conn: Any, number_id: int) -> None:
    """An available number is reserved by a task (DESIGN §3)."""
    await conn.execute(RESERVE, number_id)


async def of_client(db: Any, client_pk: int, *, msisdn: str | None = None, iccid: str | None = None) -> Any:
    """The number named by msisdn (else iccid) if it is the client's (MINE_BY_*), else None."""
    if msisdn:
        return await db.fetchrow(MINE_BY_MSISDN, msisdn, client_pk)
    return await db.fetchrow(MINE_BY_ICCID, iccid, client_pk)


async def bound_to(db: Any, chip_id: int) -> Any:
    """The number bound to the chip (a Record with msisdn), or None."""
    return await db.fetchrow(BOUND_TO, chip_id)


async def writable_provinces(db: Any, client_pk: int | None) -> list[tuple[str, str]]:
    """(code, name) of the open provinces holding a number the client (or anyone: None) may auto-allocate."""
    return [(r["code"], r["name"]) for r in await db.fetch(WRITABLE_PROVINCES, client_pk)]


async def allocation_state(conn: Any, iccids: list[str]) -> list[Any]:
    """Records (iccid, client_id, status) of the numbers named."""
    return await conn.fetch(ALLOCATION_STATE, iccids)


async def allocate(conn: Any, client_pk: int, iccids: list[str]) -> list[Any]:
    """Records (iccid) of the numbers allocated to the client."""
    return await conn.fetch(ALLOCATE, client_pk, iccids)


async def copy_in(db: Any, rows: list[tuple], columns: list[str]) -> None:
    """Bulk load of numbers (COPY; the simulator's fleets): secrets already encrypted, tags computed."""
    await db.copy_records_to_table("numbers", records=rows, columns=columns)
