"""Imports of DESIGN §7: all or nothing, every bad row listed, conflicts with stored rows refused, re-import adds nothing."""

import pytest

from esimota.errors import DomainError, ImportRejected
from esimota.service import admin, imports, queries

from ..conftest import BATCH_KEY, eid, iccid, imsi, write_chips, write_numbers


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


async def test_an_imsi_already_stored_is_refused_without_showing_it(pool, tmp_path):
    """One number per IMSI across imports (IMSIs are stored encrypted, R14: compared by blind-index
    tags): a new ICCID with a stored IMSI is IMSI_EXISTS, a stored ICCID with another IMSI is
    ICCID_EXISTS; nothing is stored, and no message or detail holds the IMSI."""
    first = write_numbers(tmp_path / "a.csv", range(3))
    assert (await imports.import_numbers(pool, str(first))).imported == 3
    rows = first.read_text().splitlines()
    other = tmp_path / "b.csv"
    other.write_text("\n".join([
        rows[0],
        write_numbers(tmp_path / "x.csv", [7]).read_text().splitlines()[1].replace(imsi(7), imsi(1)),
        rows[3].replace(imsi(2), imsi(8)),
        write_numbers(tmp_path / "y.csv", [9]).read_text().splitlines()[1],
    ]) + "\n")
    with pytest.raises(ImportRejected) as err:
        await imports.import_numbers(pool, str(other))
    assert [(p[0], p[1]) for p in err.value.problems] == [(2, "IMSI_EXISTS"), (3, "ICCID_EXISTS")]
    assert err.value.problems[0][2] == f"IMSI already held by ICCID {iccid(1)}"
    assert imsi(1) not in str(err.value.problems) and imsi(1) not in str(err.value)
    assert await pool.fetchval("SELECT count(*) FROM numbers") == 3
    tags = await pool.fetch("SELECT imsi_tag FROM numbers")
    assert len({r["imsi_tag"] for r in tags}) == 3 and all(len(r["imsi_tag"]) == 16 for r in tags)
    assert all(imsi(i).encode() not in r["imsi_tag"] for r in tags for i in range(3))


async def test_numbers_stored_before_the_imsi_index_get_tags_at_the_next_import(pool, tmp_path):
    """Migration 0009 adds the tags empty: the next import computes them from the ciphertexts (in its
    own transaction) and then sees a repeated IMSI; two stored numbers with one IMSI stop it, unchanged."""
    from esimota.store import crypto
    from esimota.store import numbers as number_store
    assert (await imports.import_numbers(pool, str(write_numbers(tmp_path / "a.csv", range(4))))).imported == 4
    before = {r["iccid"]: r["imsi_tag"] for r in await pool.fetch("SELECT iccid, imsi_tag FROM numbers")}
    await pool.execute("UPDATE numbers SET imsi_tag = NULL")
    clash = tmp_path / "b.csv"
    clash.write_text(write_numbers(tmp_path / "x.csv", [9]).read_text().replace(imsi(9), imsi(3)))
    with pytest.raises(ImportRejected) as err:
        await imports.import_numbers(pool, str(clash))
    assert [(p[0], p[1]) for p in err.value.problems] == [(2, "IMSI_EXISTS")]
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE imsi_tag IS NULL") == 4  # rolled back
    assert (await imports.import_numbers(pool, str(write_numbers(tmp_path / "c.csv", [5])))).imported == 1
    after = {r["iccid"]: r["imsi_tag"] for r in await pool.fetch("SELECT iccid, imsi_tag FROM numbers")}
    assert {k: after[k] for k in before} == before and after[iccid(5)] is not None
    ring = await crypto.keyring(pool)
    assert after[iccid(5)] == number_store.imsi_tag(ring, imsi(5))
    # two numbers stored with one IMSI (as before 0009 nothing prevented): the tagging refuses them
    await pool.execute("UPDATE numbers SET imsi_tag = NULL")
    row = await pool.fetchrow("SELECT imsi_enc FROM numbers WHERE iccid = $1", iccid(0))
    moved = ring.encrypt(ring.decrypt(row["imsi_enc"], number_store.aad(number_store.IMSI_AAD, iccid(0))),
                         number_store.aad(number_store.IMSI_AAD, iccid(1)))
    await pool.execute("UPDATE numbers SET imsi_enc = $1 WHERE iccid = $2", moved, iccid(1))
    with pytest.raises(DomainError) as stopped:
        await imports.import_numbers(pool, str(write_numbers(tmp_path / "d.csv", [6])))
    assert stopped.value.reason == "STORED_IMSI_REPEATED" and imsi(0) not in str(stopped.value)
    assert iccid(0) in str(stopped.value) and iccid(1) in str(stopped.value)
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE imsi_tag IS NULL") == 5
    assert await pool.fetchval("SELECT count(*) FROM numbers") == 5


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
    await admin.allocate_chips(pool, a.client_id, [eid(500)])
    info = await queries.get_chip(pool, a, eid(500))
    assert (info.card_status, info.status_desc, info.remaining_flow) == (1, "待写卡", 5.0)
    assert info.temp_expire_date == soon + dt.timedelta(days=180)
    assert [p[0] for p in await queries.list_provinces(pool)] == ["44"]  # §7.2.2.1: where numbers are free


async def test_every_problem_of_a_bad_row_is_listed(pool, tmp_path):
    """Issue 17: a row with three bad fields gets three problems, not only the first; other rows too."""
    await admin.create_batch(pool, "B1", BATCH_KEY)
    path = write_chips(tmp_path / "c.csv", range(3))
    lines = path.read_text().splitlines()
    bad_eid = eid(0)[:-1] + str((int(eid(0)[-1]) + 1) % 10)
    lines[1] = lines[1].replace(eid(0), bad_eid).replace(",4G,", ",5G,").replace(",EM-1,", ",,")
    lines[3] = lines[3].replace(",4G,", ",LTE,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportRejected) as err:
        await imports.import_chips(pool, str(path), "B1")
    assert [(p[0], p[1]) for p in err.value.problems] == [
        (2, "CHIP_MODEL_MISSING"), (2, "EID_INVALID"), (2, "NETWORK_TYPE_INVALID"), (4, "NETWORK_TYPE_INVALID")]
    assert await pool.fetchval("SELECT count(*) FROM chips") == 0


async def test_numbers_imported_into_a_province_close_its_no_resource(pool, seeded, tmp_path):
    """Table 3 无可用省份资源 closes itself, the reason recorded, once an import gives the province numbers."""
    from esimota.errors import PermissionDenied
    from esimota.service import writing

    a, _ = seeded
    with pytest.raises(PermissionDenied):
        await writing.apply_write(pool, a, writing.ApplyRequest(eid(1), 1, province_code="45"))
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n45.csv", range(50, 52), province="44")))
    assert await pool.fetchval("SELECT closed_at FROM exceptions WHERE kind = 'NO_RESOURCE:45'") is None
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n45b.csv", range(60, 62), province="45")))
    row = await pool.fetchrow("SELECT closed_at, resolution FROM exceptions WHERE kind = 'NO_RESOURCE:45'")
    assert row["closed_at"] is not None and "imported" in row["resolution"]
