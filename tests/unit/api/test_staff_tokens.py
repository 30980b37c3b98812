"""Staff tokens and the per-rpc staff gate (R28): signed, expiring, roles from a cache, denials recorded."""

from __future__ import annotations

import pytest

from esimota import errors
from esimota.api.registry import METHODS
from esimota.service import staff, staff_auth
from esimota.store import staff as staff_store

MASTER = bytes(range(32))


def test_staff_token_round_trip_expiry_and_tampering():
    signer = staff_auth.StaffTokenSigner(MASTER)
    token, ttl = signer.issue("ops.olga", now=1_000_000)
    assert ttl == 86400 and token.startswith("st1.ops.olga.")
    assert signer.verify(token, now=1_000_000 + 86399) == "ops.olga"  # a username may hold dots
    with pytest.raises(errors.Unauthenticated) as err:
        signer.verify(token, now=1_000_000 + 86400)
    assert err.value.reason == "TOKEN_EXPIRED"
    for bad in (token.replace("olga", "root"), token[:-1] + ("A" if token[-1] != "A" else "B"), "st1.x", "st1..1.a"):
        with pytest.raises(errors.Unauthenticated) as err:
            signer.verify(bad, now=1_000_000)
        assert err.value.reason == "TOKEN_INVALID"
    for missing in ("", None, "adm.xyz", "v1.c.1.2.m"):
        with pytest.raises(errors.Unauthenticated) as err:
            signer.verify(missing, now=1_000_000)
        assert err.value.reason == "STAFF_TOKEN_REQUIRED"
    with pytest.raises(errors.Unauthenticated):  # another platform's master key
        staff_auth.StaffTokenSigner(bytes(32)).verify(token, now=1_000_000)


def test_every_admin_rpc_names_a_staff_action():
    """admin.proto: every AdminService rpc needs a staff token and one action of the role matrix."""
    want = {"CreateClient": "client.manage", "RotateClientSecret": "client.manage", "SetWhitelist": "client.manage",
            "UpdateClient": "client.manage",
            "SetPermissions": "client.manage", "DisableClient": "client.manage", "AllocateNumbers": "resources.import",
            "AllocateChips": "resources.import", "ReleaseChips": "resources.import",
            "ListExceptions": "exception.read", "ListCallbacks": "exception.read",
            "RepushCallback": "exception.handle", "CloseException": "exception.handle",
            # issue 15: find anything (read roles), re-provisioning a temporary number (chip.manage)
            "ListTasks": "chip.read", "ShowTask": "chip.read", "ListChips": "chip.read", "ListNumbers": "chip.read",
            "ListClients": "chip.read", "SearchExceptions": "exception.read", "ShowException": "exception.read",
            "ListAlerts": "exception.read", "SearchCallbacks": "exception.read", "ReprovisionChip": "chip.manage",
            # R33, R34: the regulator reports, made by hand or on schedule
            "ListExports": "export.read", "OpenExport": "export.read"}
    admin = {m.name: (m.permission, m.staff_action) for m in METHODS if m.service == "esimota.v1.AdminService"}
    assert admin == {name: ("staff", action) for name, action in want.items()}
    assert all(m.staff_action in staff.PERMISSIONS for m in METHODS if m.permission == "staff")
    assert all(not m.staff_action for m in METHODS if m.permission != "staff")


class FakePool:
    """The two statements the gate runs, counted."""

    def __init__(self, accounts: dict[str, list[str]]) -> None:
        self.accounts, self.fetches, self.executed = accounts, 0, []

    async def fetch(self, sql, *args):
        assert sql == staff_store.ACCOUNTS
        self.fetches += 1
        return [{"username": u, "roles": r, "revoked": 0} for u, r in self.accounts.items()]

    async def execute(self, sql, *args):
        self.executed.append((sql, args))


async def test_gate_checks_roles_from_its_cache_and_records_denials():
    pool = FakePool({"root": ["admin"], "audrey": ["auditor"]})
    gate = staff_auth.StaffGate(pool, staff_auth.StaffTokenSigner(MASTER))
    await gate.reload()
    root, audrey = gate.signer.issue("root")[0], gate.signer.issue("audrey")[0]
    for _ in range(3):
        assert await gate.authorise(root, "client.manage", "CreateClient") == "staff:root"
    assert await gate.authorise(audrey, "exception.read", "ListExceptions") == "staff:audrey"
    assert pool.fetches == 1 and pool.executed == []  # no database round trip per call
    with pytest.raises(errors.PermissionDenied) as err:
        await gate.authorise(audrey, "client.manage", "CreateClient")
    assert err.value.reason == "ROLE_FORBIDDEN"
    pool.accounts["olga"] = ["operator"]  # added on another process: found by an on-demand reload
    assert await gate.authorise(gate.signer.issue("olga")[0], "resources.import", "AllocateNumbers") == "staff:olga"
    with pytest.raises(errors.PermissionDenied) as err:
        await gate.authorise(gate.signer.issue("ghost")[0], "exception.read", "ListExceptions")
    assert err.value.reason == "STAFF_UNKNOWN"
    denials = [args for sql, args in pool.executed if "audit_log" in sql]
    assert [(a[0], a[1], a[2]) for a in denials] == [("staff:audrey", "denied", "client.manage"),
                                                    ("staff:ghost", "denied", "exception.read")]
    await gate.reload()  # activity is written back with the reloads, each account once
    touched = [name for sql, args in pool.executed if sql == staff_store.TOUCH_NAMES for name in args[0]]
    assert sorted(touched) == ["audrey", "olga", "root"] and not gate.seen
