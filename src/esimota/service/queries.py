"""Information queries (§7.2.2.1, §7.2.3, R12, R13): provinces, chip, number, usage, open status, expiring."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..domain import identifiers
from ..domain.lifecycle import CardState
from ..domain.lifetimes import ALERT_DAYS
from ..domain.provinces import PROVINCES
from ..errors import InvalidArgument, NotFound
from ..store import chips as chip_store
from ..store import numbers as number_store
from ..store.clients import Client
from .common import CST, connection, now, require

MB = 1024 * 1024


@dataclass(frozen=True)
class ChipInfo:
    """§7.2.3.1 fields, plus the temporary number's expiry (R12)."""

    eid: str
    imei: str | None
    chip_model: str
    temp_msisdn: str
    temp_iccid: str
    card_status: int
    status_desc: str
    remaining_flow: float  # MB
    network_type: str
    open_time: dt.date
    temp_expire_date: dt.date


@dataclass(frozen=True)
class NumberInfo:
    """§7.2.3.2–§7.2.3.5 fields: the API layer picks the ones each route returns."""

    msisdn: str
    iccid: str
    eid: str
    province_code: str
    province: str
    card_status: int
    status_desc: str
    open_time: dt.datetime | None
    total_flow: float
    used_flow: float
    remaining_flow: float
    update_time: dt.datetime | None
    city: str | None
    location_time: dt.datetime | None
    temp_expire_date: dt.date | None


async def list_provinces(db: Any, client: Client | None = None) -> list[tuple[str, str]]:
    """§7.2.2.1: (province_code, province_name) of the provinces where `client` can auto-allocate now."""
    return await number_store.writable_provinces(db, client.id if client else None)


def _chip_info(chip: Any) -> ChipInfo:
    state = CardState(chip["state"])
    return ChipInfo(chip["eid"], chip["imei"], chip["chip_model"], chip["temp_msisdn"], chip["temp_iccid"],
                    int(state), state.zh, round(chip["remaining_flow_bytes"] / MB, 3), chip["network_type"],
                    chip["open_time"], chip["temp_expires_on"])


async def get_chip(db: Any, client: Client, eid: str) -> ChipInfo:
    """§7.2.3.1 chip information."""
    require(client, "chip")
    identifiers.validate_eid(eid)
    return _chip_info(await chip_store.own(db, eid, client.id))


async def _number_row(db: Any, client: Client, msisdn: str | None, iccid: str | None) -> tuple[Any, Any]:
    if msisdn:
        row = await number_store.of_client(db, client.id, msisdn=identifiers.validate_msisdn(msisdn))
    elif iccid:
        row = await number_store.of_client(db, client.id, iccid=identifiers.validate_iccid(iccid))
    else:
        raise InvalidArgument("msisdn or iccid is required", reason="NUMBER_REQUIRED")
    if row is None:  # another client's numbers do not exist for this caller: one statement, as for none
        raise NotFound("unknown number", reason="NUMBER_NOT_FOUND")
    return row, await chip_store.of_number(db, row["chip_id"], row["id"])


async def get_number(db: Any, client: Client, *, msisdn: str | None = None, iccid: str | None = None) -> NumberInfo:
    """§7.2.3.2–5 number information, usage, open status and location, for a number of the caller's."""
    require(client, "number")
    async with connection(db) as conn:
        row, chip = await _number_row(conn, client, msisdn, iccid)
    state = CardState(chip["state"]) if chip is not None else CardState.PENDING_WRITE
    total, used = float(row["monthly_quota_mb"]), float(row["used_flow_mb"])
    return NumberInfo(row["msisdn"], row["iccid"], chip["eid"] if chip is not None else "", row["province_code"],
                      PROVINCES.get(row["province_code"], ""), int(state), state.zh, row["opened_at"],
                      total, used, max(0.0, total - used), row["usage_updated_at"], row["city"],
                      row["location_at"], chip["temp_expires_on"] if chip is not None else None)


async def open_status(db: Any, client: Client, *, eid: str | None = None,
                      msisdn: str | None = None) -> NumberInfo | ChipInfo:
    """§7.2.3.4 by eid (the chip, with its bound number if any) or by msisdn."""
    require(client, "number")
    if msisdn or not eid:
        return await get_number(db, client, msisdn=msisdn)
    identifiers.validate_eid(eid)
    chip = await chip_store.own(db, eid, client.id)
    bound = await number_store.bound_to(db, chip["id"])
    if bound is not None:
        return await get_number(db, client, msisdn=bound["msisdn"])
    return _chip_info(chip)


async def list_expiring(db: Any, *, client: Client | None = None, within_days: int = ALERT_DAYS,
                        today: dt.date | None = None, limit: int = 10000) -> list[dict]:
    """Chips whose temporary number expires within `within_days` (R12: the 30-day alert), or has expired."""
    today = today or now().astimezone(CST).date()
    rows = await chip_store.expiring(db, today + dt.timedelta(days=within_days), client.id if client else None, limit)
    return [dict(r, expired=r["temp_expires_on"] <= today) for r in rows]
