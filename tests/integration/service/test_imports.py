"""Imports of DESIGN §7: all or nothing, every bad row listed, conflicts with stored rows refused, re-import adds nothing."""

import pytest

from esimota.errors import ImportRejected
from esimota.service import admin, imports, queries

from ..conftest import BATCH_KEY, eid, write_chips, write_numbers


async def test_chip_import_rejects_bad_rows_and_changes_nothing(pool, tmp_path):
    """DESIGN §7, R6, R12: bad EID / IMEI / network type / date → exit-2 error with lines; no chip stored."""
    await admin.create_batch(pool, "B1", BATCH_KEY)
    path = write_chips(tmp_path / "c.csv", range(5))
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(eid(0), eid(0)[:-1] + str((int(eid(0)[-1]) + 1) % 10))
    lines[2] = lines[2].replace(",4G,", ",5G,")
    lines[3] = lines[3].replace(",EM-1,", ",,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportRejected) as err:
        await imports.import_chips(pool, str(path), "B1")
    assert [(p[0], p[1]) for p in err.value.problems] == [
        (2, "EID_INVALID"), (3, "NETWORK_TYPE_INVALID"), (4, "CHIP_MODEL_MISSING")]
    assert await pool.fetchval("SELECT count(*) FROM chips") == 0


async def test_conflicts_with_stored_rows_are_bad_rows(pool, tmp_path):
    """A number whose ICCID is stored with another MSISDN is refused; the identical file again adds nothing."""
    first = write_numbers(tmp_path / "a.csv", range(3))
    assert (await imports.import_numbers(pool, str(first))).imported == 3
    again = await imports.import_numbers(pool, str(first))
    assert (again.imported, again.already_present) == (0, 3)
    other = tmp_path / "b.csv"
    text = first.read_text().splitlines()
    text[2] = text[2].replace("1064000000001", "1064000000099")
    other.write_text("\n".join(text + [text[1].replace("1064000000000", "1064000000050")]) + "\n")
    with pytest.raises(ImportRejected) as err:
        await imports.import_numbers(pool, str(other))
    assert [(p[0], p[1]) for p in err.value.problems] == [(3, "ICCID_EXISTS"), (5, "DUPLICATE_IMSI")]
    assert await pool.fetchval("SELECT count(*) FROM numbers") == 3


async def test_header_and_field_count(pool, tmp_path):
    """DESIGN §7: the columns exactly as listed; a short row is a bad row."""
    bad = tmp_path / "h.csv"
    bad.write_text("msisdn,iccid\n1\n")
    with pytest.raises(ImportRejected) as err:
        await imports.import_numbers(pool, str(bad))
    assert err.value.problems[0][:2] == (1, "BAD_HEADER")
    short = tmp_path / "s.csv"
    short.write_text(",".join(imports.NUMBER_COLUMNS) + "\n1064000000001,x\n")
    with pytest.raises(ImportRejected) as err:
        await imports.import_numbers(pool, str(short))
    assert err.value.problems == [(2, "BAD_FIELD_COUNT", "2 fields, expected 8")]


async def test_expiring_list_and_chip_query(pool, seeded, tmp_path):
    """R12: chips whose temporary number expires within 30 days are listed; §7.2.3.1 chip info."""
    import datetime as dt
    a, _ = seeded
    soon = dt.date.today() - dt.timedelta(days=170)  # NB-IoT: expires in 10 days
    await imports.import_chips(pool, str(write_chips(tmp_path / "s.csv", [500], open_time=soon,
                                                     network="NB-IoT")), "B1")
    listed = await queries.list_expiring(pool)
    assert [r["eid"] for r in listed] == [eid(500)] and not listed[0]["expired"]
    info = await queries.get_chip(pool, a, eid(500))
    assert (info.card_status, info.status_desc, info.remaining_flow) == (1, "待写卡", 5.0)
    assert info.temp_expire_date == soon + dt.timedelta(days=180)
    assert [p[0] for p in await queries.list_provinces(pool)][:2] == ["11", "12"]
