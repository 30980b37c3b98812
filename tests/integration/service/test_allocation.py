"""Chip allocation (§6.2.1.1 分配数据资源, DESIGN §3, R15, R31): a client acts only on chips allocated to it."""

import shutil

import asyncpg
import pytest

from esimota.errors import ImportRejected, InvalidArgument, NotFound
from esimota.service import admin, imports, queries, writing
from esimota.service.writing import ApplyRequest
from esimota.store import migrate

from tests.support import databases
from ..conftest import BATCH_KEY, eid, iccid, msisdn, write_chips, write_numbers


async def owner_of(pool, i):
    return await pool.fetchval("SELECT cl.name FROM chips c LEFT JOIN clients cl ON cl.id = c.owner_client_id "
                               "WHERE c.eid = $1", eid(i))


@pytest.fixture
async def two_clients(pool, tmp_path):
    await admin.create_batch(pool, "B1", BATCH_KEY)
    await imports.import_chips(pool, str(write_chips(tmp_path / "chips.csv", range(1, 6))), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "numbers.csv", range(1, 4))))
    a = await admin.create_client(pool, name="A", phone="13800000001", ip="10.0.0.0/8",
                                  callback_url="https://a.example/cb")
    b = await admin.create_client(pool, name="B", phone="13800000002", ip="10.0.0.0/8",
                                  callback_url="https://b.example/cb")
    return a.client, b.client


async def test_an_unallocated_chip_is_an_unknown_eid_until_the_operator_allocates_it(pool, two_clients):
    """The first apply no longer makes a chip its caller's: unallocated → 404 EID_NOT_FOUND, nothing changes."""
    a, _ = two_clients
    with pytest.raises(NotFound) as unallocated:
        await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))
    with pytest.raises(NotFound) as unknown:
        await writing.apply_write(pool, a, ApplyRequest(eid(999), 1, province_code="44"))
    assert (unallocated.value.reason, unallocated.value.message) == (unknown.value.reason, unknown.value.message)
    assert await owner_of(pool, 1) is None and await pool.fetchval("SELECT count(*) FROM task_events") == 0
    assert await admin.allocate_chips(pool, "A", [eid(1)]) == [eid(1)]  # by name
    assert (await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))).card_status == 2


async def test_allocation_is_all_or_nothing_and_audited(pool, two_clients):
    """An unknown EID or another client's chip refuses the whole request, with every bad line listed."""
    a, b = two_clients
    await admin.allocate_chips(pool, a.client_id, [eid(1)], actor="staff:ops")
    with pytest.raises(ImportRejected) as err:
        await admin.allocate_chips(pool, b.client_id, [eid(2), eid(1), eid(999), "123"])
    assert [(line, reason) for line, reason, _ in err.value.problems] == [
        (2, "CHIP_ALLOCATED"), (3, "EID_NOT_FOUND"), (4, "EID_INVALID")]
    assert await owner_of(pool, 2) is None and await owner_of(pool, 1) == "A"
    assert await admin.allocate_chips(pool, a.client_id, [eid(1), eid(2)]) == [eid(1), eid(2)]  # repeat: same
    audit = await pool.fetch("SELECT actor, target, detail->>'count' AS n FROM audit_log "
                             "WHERE action = 'chips.allocate' ORDER BY id")
    assert [(r["actor"], r["target"], r["n"]) for r in audit] == [("staff:ops", a.client_id, "1"),
                                                                   ("admin", a.client_id, "2")]


async def test_release_only_while_no_task_is_open(pool, two_clients):
    """`chips release` undoes an allocation, but never under an open write; then another client may have it."""
    a, b = two_clients
    await admin.allocate_chips(pool, a.client_id, batch="B1")
    await writing.apply_write(pool, a, ApplyRequest(eid(3), 1, province_code="44"))
    with pytest.raises(ImportRejected) as err:
        await admin.release_chips(pool, a.client_id, [eid(3), eid(4)])
    assert [(line, reason) for line, reason, _ in err.value.problems] == [(1, "TASK_OPEN")]
    with pytest.raises(ImportRejected) as err:
        await admin.release_chips(pool, b.client_id, [eid(4)])
    assert [reason for _, reason, _ in err.value.problems] == ["CHIP_NOT_ALLOCATED"]
    assert await admin.release_chips(pool, a.client_id, [eid(4)]) == [eid(4)]
    await admin.allocate_chips(pool, b.client_id, [eid(4)])
    assert (await queries.get_chip(pool, b, eid(4))).eid == eid(4)
    with pytest.raises(NotFound):
        await queries.get_chip(pool, a, eid(4))
    await writing.cancel_write(pool, a, eid=eid(3))
    assert await admin.release_chips(pool, a.client_id, [eid(3)]) == [eid(3)]


async def test_another_clients_number_takes_the_same_statements_as_an_unknown_one(pool, two_clients):
    """R15, issue 14's attack run: the number queries of §7.2.3 answered another client's (or an
    unallocated) number with the same 404 as an unknown one, but after a second statement (the chip
    lookup), ~0.2 ms slower over HTTP: an oracle of which MSISDNs and ICCIDs exist. Now a number that is
    not the caller's and one that does not exist run the same single statement and the same 404."""
    a, b = two_clients
    await admin.allocate_numbers(pool, b.client_id, [iccid(1)])
    await admin.allocate_chips(pool, b.client_id, [eid(2)])
    await writing.apply_write(pool, b, ApplyRequest(eid(2), 0, iccid=iccid(1), msisdn=msisdn(1)))  # bound to B's chip
    await admin.allocate_chips(pool, a.client_id, [eid(3)])
    await writing.apply_write(pool, a, ApplyRequest(eid(3), 1, province_code="44"))  # one of A's, by auto-allocation
    mine = await pool.fetchval("SELECT n.msisdn FROM numbers n JOIN tasks t ON t.number_id = n.id "
                               "JOIN chips c ON c.id = t.chip_id WHERE c.eid = $1", eid(3))
    async with pool.acquire() as conn:
        seen: list[str] = []

        class Recorded:
            """The real connection, noting each statement it is asked to run."""

            def __getattr__(self, name):
                method = getattr(conn, name)

                async def call(query, *args, **kw):
                    seen.append(query)
                    return await method(query, *args, **kw)
                return call

        async def run(**named) -> tuple[list[str], str]:
            seen.clear()
            try:
                await queries.get_number(Recorded(), a, **named)
                outcome = "found"
            except NotFound as exc:
                outcome = f"{exc.reason}: {exc.message}"
            return list(seen), outcome

        for key, other, free, unknown in (("msisdn", msisdn(1), msisdn(3), msisdn(99)),
                                          ("iccid", iccid(1), iccid(3), iccid(99))):
            answers = [await run(**{key: value}) for value in (other, free, unknown)]
            assert answers[0] == answers[1] == answers[2]
            assert answers[0][1] == "NUMBER_NOT_FOUND: unknown number" and len(answers[0][0]) == 1
        assert (await run(msisdn=mine))[1] == "found"  # the caller's own number is still found


async def test_client_by_id_or_name_and_a_shared_name_is_refused(pool, two_clients):
    """DESIGN §7: `--client` takes a client's id or its name; a name two clients share names neither."""
    await admin.create_client(pool, name="A", phone="13800000003", ip="10.0.0.1", callback_url="https://c.example/cb")
    _, b = two_clients
    assert await admin.allocate_chips(pool, "B", [eid(5)]) == [eid(5)]
    with pytest.raises(InvalidArgument) as err:
        await admin.allocate_chips(pool, "A", [eid(4)])
    assert err.value.reason == "CLIENT_AMBIGUOUS"
    with pytest.raises(NotFound):
        await admin.allocate_chips(pool, "nobody", [eid(4)])


async def test_migration_keeps_every_owned_chip_allocated_to_its_owner(pg_server_url, tmp_path):
    """Migration 0013: a chip owned under the old first-apply rule stays allocated to its owner (audited)."""
    name = await databases.create(pg_server_url, "esimota_m_")
    try:
        before = tmp_path / "migrations"
        before.mkdir()
        for path in migrate.load():
            if path.version < 13:
                shutil.copy(migrate.MIGRATIONS_DIR / f"{path.version:04d}_{path.name}.sql", before)
        conn = await asyncpg.connect(databases.url_of(pg_server_url, name))
        try:
            await migrate.migrate(conn, before)
            # the state the old code left: an owner set by a first apply (no path to it exists any more)
            await conn.execute("INSERT INTO clients (client_id, name, phone, secret_hash, ip_whitelist, permissions, "
                               "callback_url, callback_secret_enc) VALUES ('cold', 'Old', '1380', 'x', "
                               "'{10.0.0.0/8}', '{write}', 'https://o/cb', '\\x00')")
            await conn.execute("INSERT INTO chip_batches (name, master_key_enc) VALUES ('B', '\\x00')")
            for i, owner in ((1, "(SELECT id FROM clients)"), (2, "NULL")):
                await conn.execute(f"INSERT INTO chips (eid, batch_id, chip_model, temp_iccid, temp_msisdn, "
                                   f"network_type, open_time, temp_expires_on, test_flow_bytes, remaining_flow_bytes, "
                                   f"owner_client_id) VALUES ($1, 1, 'M', $2, $3, '4G', now(), now(), 0, 0, {owner})",
                                   eid(i), f"8986{i:016d}", f"1440{i:09d}")
            assert await migrate.migrate(conn) == [v.version for v in migrate.load() if v.version >= 13]
            rows = await conn.fetch("SELECT eid, owner_client_id IS NOT NULL AS owned, allocated_at IS NOT NULL AS "
                                    "dated FROM chips ORDER BY id")
            assert [(r["owned"], r["dated"]) for r in rows] == [(True, True), (False, False)]
            audit = await conn.fetchrow("SELECT actor, target, detail->>'count' AS n FROM audit_log")
            assert tuple(audit) == ("migration:0013", "cold", "1")
        finally:
            await conn.close()
    finally:
        await databases.drop(pg_server_url, name)
