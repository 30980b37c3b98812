"""AdminService per staff member (R28) through a real gRPC channel: staff tokens, roles per rpc, denials audited."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import grpc
import pytest

from esimota import cli
from esimota.service import backup, staff
from esimota.v1 import admin_pb2, admin_pb2_grpc, ingest_pb2, ingest_pb2_grpc

from .test_api_grpc import bearer, fails
from .test_api_harness import running  # noqa: F401  (fixture)

DENIED = (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")


def _changing(a: admin_pb2_grpc.AdminServiceStub, cid: str, iccid: str, md: tuple) -> dict:
    """Every AdminService rpc that changes something, by name, as a function starting the call."""
    return {
        "CreateClient": lambda: a.CreateClient(admin_pb2.CreateClientRequest(
            name="x", phone="13800000009", ip_whitelist=["10.0.0.1"], callback_url="https://x/cb"), metadata=md),
        "RotateClientSecret": lambda: a.RotateClientSecret(admin_pb2.ClientRef(client_id=cid), metadata=md),
        "UpdateClient": lambda: a.UpdateClient(admin_pb2.UpdateClientRequest(client_id=cid, rate_limit_per_min=5),
                                               metadata=md),
        "SetWhitelist": lambda: a.SetWhitelist(admin_pb2.SetWhitelistRequest(client_id=cid,
                                                                             ip_whitelist=["1.2.3.4"]), metadata=md),
        "SetPermissions": lambda: a.SetPermissions(admin_pb2.SetPermissionsRequest(client_id=cid,
                                                                                   permissions=["chip"]), metadata=md),
        "DisableClient": lambda: a.DisableClient(admin_pb2.ClientRef(client_id=cid), metadata=md),
        "AllocateNumbers": lambda: a.AllocateNumbers(admin_pb2.AllocateNumbersRequest(client_id=cid, iccids=[iccid]),
                                                     metadata=md),
        "RepushCallback": lambda: a.RepushCallback(admin_pb2.RepushCallbackRequest(event_id="E0"), metadata=md),
        "CloseException": lambda: a.CloseException(admin_pb2.CloseExceptionRequest(id=999_999, resolution="x"),
                                                   metadata=md),
    }


async def _state(pool) -> dict:
    async with pool.acquire() as conn:
        sums = await backup.table_checksums(conn)
    # the platform's own bookkeeping moves on its own: worker 0's leased jobs renew and record their runs
    return {t: v for t, v in sums.items()
            if t not in ("audit_log", "api_calls", "rate_windows", "job_leases", "job_runs", "stream_places")}


async def _eventually(check, timeout: float = 5.0) -> None:
    """R28: a role change or a revocation reaches every worker within 5 s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except (AssertionError, grpc.aio.AioRpcError, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def test_an_auditor_reads_but_cannot_call_any_changing_admin_rpc(running, pool):
    """Least privilege: every changing rpc is PERMISSION_DENIED for an auditor, nothing changes, each denial audited."""
    await staff.add(pool, "audrey", "Audrey", "auditor", "root")
    md = bearer(running.token_for("audrey"))
    before = await _state(pool)
    async with running.channel() as ch, running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        calls = _changing(a, running.fleet.client_id, running.fleet.numbers[0]["iccid"], md)
        for call in calls.values():
            await fails(call(), *DENIED)
        assert await _state(pool) == before
        rows = await pool.fetch("SELECT target, detail->>'rpc' AS rpc FROM audit_log "
                                "WHERE actor = 'staff:audrey' AND action = 'denied' ORDER BY id")
        assert [r["rpc"] for r in rows] == list(calls)
        assert [r["target"] for r in rows] == ["client.manage"] * 6 + ["resources.import"] + ["exception.handle"] * 2
        await a.ListExceptions(admin_pb2.ListExceptionsRequest(), metadata=md)
        listed = await a.ListCallbacks(admin_pb2.ListCallbacksRequest(task_id="none"), metadata=md)
        assert list(listed.callbacks) == []


async def test_an_operator_allocates_numbers_but_cannot_manage_clients(running, pool):
    """resources.import and exception.handle are an operator's; client.manage is the admin's alone (R31)."""
    await staff.add(pool, "olga", "Olga", "operator", "root")
    olga, root = bearer(running.token_for("olga")), bearer(running.staff_token)
    iccid = running.fleet.numbers[0]["iccid"]
    async with running.channel() as ch, running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        calls = _changing(a, running.fleet.client_id, iccid, olga)
        assert list((await calls.pop("AllocateNumbers")()).iccids) == [iccid]
        await fails(calls.pop("RepushCallback")(), grpc.StatusCode.NOT_FOUND, "EVENT_NOT_FOUND")  # past the gate
        await fails(calls.pop("CloseException")(), grpc.StatusCode.NOT_FOUND, "EXCEPTION_NOT_FOUND")
        for call in calls.values():
            await fails(call(), *DENIED)
        made = await a.CreateClient(admin_pb2.CreateClientRequest(
            name="y", phone="13800000008", ip_whitelist=["10.0.0.1"], callback_url="https://y/cb"), metadata=root)
        assert made.client_secret
    rows = await pool.fetch("SELECT actor, action FROM audit_log WHERE action IN ('numbers.allocate', 'client.create')")
    assert sorted(tuple(r) for r in rows) == [("staff:olga", "numbers.allocate"), ("staff:root", "client.create")]
    assert {"staff:olga", "staff:root"} <= await _eventually_logged(pool, {"staff:olga", "staff:root"})


async def _eventually_logged(pool, expected: set) -> set:
    """The call log (R27) names the staff member of each admin call (written behind, every 0.2 s)."""
    who: set = set()
    for _ in range(50):
        who = {r[0] for r in await pool.fetch("SELECT DISTINCT client_id FROM api_calls WHERE route LIKE "
                                              "'/esimota.v1.AdminService/%'")}
        if expected <= who:
            break
        await asyncio.sleep(0.1)
    return who


async def test_unknown_changed_and_disabled_accounts(running, pool):
    """A token of no account is STAFF_UNKNOWN; new roles apply and a disabled account is refused within 5 s."""
    await staff.add(pool, "olga", "Olga", "operator", "root")
    olga = bearer(running.token_for("olga"))
    req = admin_pb2.CreateClientRequest(name="z", phone="13800000007", ip_whitelist=["10.0.0.1"],
                                        callback_url="https://z/cb")
    async with running.channel() as ch, running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        await fails(a.ListExceptions(admin_pb2.ListExceptionsRequest(), metadata=bearer(running.token_for("ghost"))),
                    grpc.StatusCode.PERMISSION_DENIED, "STAFF_UNKNOWN")
        assert await pool.fetchval("SELECT detail->>'rpc' FROM audit_log WHERE actor = 'staff:ghost' "
                                   "AND action = 'denied'") == "ListExceptions"
        await fails(a.CreateClient(req, metadata=olga), *DENIED)
        await staff.set_roles(pool, "olga", "admin", "root")
        made = await _eventually(lambda: a.CreateClient(req, metadata=olga))
        assert made.client.client_id
        await staff.disable(pool, "olga", "root")

        async def refused():
            await fails(a.ListExceptions(admin_pb2.ListExceptionsRequest(), metadata=olga),
                        grpc.StatusCode.PERMISSION_DENIED, "STAFF_UNKNOWN")
        await _eventually(refused)
        await running.platform.api.staff.reload()  # the activity of the calls above is written back
        assert await pool.fetchval("SELECT last_active_at IS NOT NULL FROM staff_accounts WHERE username = 'olga'")


async def test_only_a_valid_staff_token_opens_the_admin_service(running, pool):
    """A partner's token, a tampered, an expired or no token: 401; the feeds take a staff token whose roles
    may import resources (a support account's is 403)."""
    await staff.add(pool, "sam", "Sam", "support", "root")
    signer = running.platform.api.staff.signer
    good = running.staff_token
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    expired = signer.issue("root", now=time.time() - 86401)[0]
    async with running.channel() as ch, running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        req = admin_pb2.ListExceptionsRequest()
        partner = running.platform.api.signer.issue(running.fleet.client_id, 0)[0]
        for md, reason in ((bearer(partner), "STAFF_TOKEN_REQUIRED"), ((), "STAFF_TOKEN_REQUIRED"),
                           (bearer(tampered), "TOKEN_INVALID"), (bearer(expired), "TOKEN_EXPIRED"),
                           (bearer("st1.root"), "TOKEN_INVALID")):
            await fails(a.ListExceptions(req, metadata=md), grpc.StatusCode.UNAUTHENTICATED, reason)
        await a.ListExceptions(req, metadata=bearer(good))
        ing = ingest_pb2_grpc.IngestServiceStub(ach)
        await fails(ing.IngestUsage(iter([ingest_pb2.UsageRecord(record_id="u1")]),
                                    metadata=bearer(running.token_for("sam"))),
                    grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")
        summary = await ing.IngestUsage(iter([ingest_pb2.UsageRecord(record_id="u1")]), metadata=bearer(good))
        assert summary.received == 1


async def test_staff_token_command(running, pool, db_url, monkeypatch, capsys):
    """`esimota staff token` prints the acting account's token, which the running platform accepts (audited)."""
    await staff.add(pool, "olga", "Olga", "operator", "root")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESIMOTA_STAFF", "olga")
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["staff", "token"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("st1.olga.")
    assert await asyncio.to_thread(cli.main, ["staff", "token", "root", "--as", "olga"]) == 2
    assert "STAFF_TOKEN_OTHER" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, ["staff", "token", "nobody"]) == 2
    assert "STAFF_UNKNOWN" in capsys.readouterr().err
    async with running.channel() as ch, running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        await a.ListExceptions(admin_pb2.ListExceptionsRequest(), metadata=bearer(token))
    row = await pool.fetchrow("SELECT actor, target, detail::text FROM audit_log WHERE action = 'staff.token'")
    assert (row["actor"], row["target"]) == ("staff:olga", "olga") and token not in row["detail"]


async def test_an_operator_closes_exceptions_over_grpc_severe_ones_with_their_report(running, pool):
    """§8.3 (R23, R24): CloseException needs a resolution, a severe exception its handling report; the
    closed exception comes back with closed_at, the close is audited under the operator's name."""
    await staff.add(pool, "oleg", "Oleg", "operator", "root")
    md = bearer(running.token_for("oleg"))
    general = await pool.fetchval("INSERT INTO exceptions (class, severity, kind, detail, deadline_at) VALUES "
                                  "('write', 'general', 'STUCK_WRITING', 'test', now() + interval '1 hour') RETURNING id")
    severe = await pool.fetchval("INSERT INTO exceptions (class, severity, kind, detail, deadline_at) VALUES "
                                 "('write', 'severe', 'STUCK_WRITING', 'test', now() + interval '1 hour') RETURNING id")
    async with running.channel() as ch, running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        await fails(a.CloseException(admin_pb2.CloseExceptionRequest(id=general), metadata=md),
                    grpc.StatusCode.INVALID_ARGUMENT, "RESOLUTION_REQUIRED")
        await fails(a.CloseException(admin_pb2.CloseExceptionRequest(id=severe, resolution="rebooted"), metadata=md),
                    grpc.StatusCode.INVALID_ARGUMENT, "REPORT_REQUIRED")
        done = await a.CloseException(admin_pb2.CloseExceptionRequest(id=general, resolution="re-applied"), metadata=md)
        assert done.id == general and done.closed_at and done.severity == "general"
        await fails(a.CloseException(admin_pb2.CloseExceptionRequest(id=general, resolution="again"), metadata=md),
                    grpc.StatusCode.PERMISSION_DENIED, "EXCEPTION_CLOSED")
        done = await a.CloseException(admin_pb2.CloseExceptionRequest(
            id=severe, resolution="rebooted", report="process, root cause, measures"), metadata=md)
        assert done.closed_at
    assert await pool.fetchval("SELECT count(*) FROM exceptions WHERE closed_at IS NULL AND id = ANY($1)",
                               [general, severe]) == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'staff:oleg' "
                               "AND action = 'exception.close'") == 2


async def test_admin_token_is_a_named_staff_token_and_revoke_ends_every_token(running, pool, db_url, monkeypatch,
                                                                              capsys):
    """`esimota api admin-token USER`: an ordinary 24 h staff token of that account (its roles, audited);
    `esimota staff revoke USER` ends every token of the account on every process within 5 s (R28)."""
    await staff.add(pool, "olga", "Olga", "operator", "root")
    monkeypatch.setenv("DATABASE_URL", db_url)
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["api", "admin-token", "olga"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("st1.olga.")
    assert await asyncio.to_thread(cli.main, ["api", "admin-token", "nobody"]) == 2
    assert "STAFF_UNKNOWN" in capsys.readouterr().err
    row = await pool.fetchrow("SELECT actor, target, detail::text FROM audit_log WHERE action = 'staff.admin_token'")
    assert (row["actor"], row["target"]) == ("master-key", "olga") and token not in row["detail"]
    async with running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        req = admin_pb2.ListExceptionsRequest()
        await a.ListExceptions(req, metadata=bearer(token))
        await fails(a.CreateClient(admin_pb2.CreateClientRequest(name="x"), metadata=bearer(token)),
                    grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")  # an operator's roles, no more
        assert await asyncio.to_thread(cli.main, ["staff", "revoke", "olga", "--as", "olga"]) == 2  # admins only
        await asyncio.sleep(1.1)  # tokens carry their issue second: one issued later is a new one
        assert await asyncio.to_thread(cli.main, ["staff", "revoke", "olga", "--as", "root"]) == 0

        async def refused():
            await fails(a.ListExceptions(req, metadata=bearer(token)), grpc.StatusCode.UNAUTHENTICATED,
                        "TOKEN_REVOKED")
        await _eventually(refused)
        await asyncio.sleep(1.1)
        fresh = running.token_for("olga")
        await a.ListExceptions(req, metadata=bearer(fresh))  # the account stays; a new token works
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'staff.revoke' "
                               "AND actor = 'staff:root' AND target = 'olga'") == 1


async def test_client_update_reaches_the_running_platform(running, pool, db_url, monkeypatch, capsys):
    """R17, R31: an operator changes a client's rate limit with `esimota client update` and its whitelist with
    AdminService UpdateClient, no SQL and no restart: the running platform answers with the new
    RateLimit-Limit and refuses beyond it, then refuses the address the new whitelist leaves out; audited."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESIMOTA_STAFF", "root")
    cid = running.fleet.client_id
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)

        async def call() -> tuple[int, dict, dict]:
            return await running.get(http, "/api/v1/write/provinces", token=token)
        code, _, headers = await call()
        assert code == 200 and headers["RateLimit-Limit"] == "100000"
        capsys.readouterr()
        assert await asyncio.to_thread(cli.main, ["client", "update", cid, "--rate-limit", "2"]) == 0

        async def limited() -> None:
            assert (await call())[2]["RateLimit-Limit"] == "2"
        await _eventually(limited)
        # 5 calls within a minute meet at most one window boundary: one side holds 3 calls, over a limit of 2
        answers = [await call() for _ in range(5)]
        refused = [(body["error"], h["RateLimit-Limit"]) for code, body, h in answers if code == 429]
        assert refused and set(refused) == {("RATE_LIMITED", "2")}
        assert {code for code, _, _ in answers} <= {200, 429}

        async with running.admin_channel() as ach:
            info = await admin_pb2_grpc.AdminServiceStub(ach).UpdateClient(
                admin_pb2.UpdateClientRequest(client_id=cid, ip_whitelist=["10.0.0.0/8"]),
                metadata=bearer(running.staff_token))
        assert (info.rate_limit_per_min, list(info.ip_whitelist)) == (2, ["10.0.0.0/8"])

        async def walled_off() -> None:
            code, body, _ = await call()
            assert (code, body["error"]) == (403, "IP_NOT_WHITELISTED")
        await _eventually(walled_off)
    rows = await pool.fetch("SELECT actor FROM audit_log WHERE action = 'client.update' AND target = $1", cid)
    assert [r["actor"] for r in rows] == ["staff:root", "staff:root"]
