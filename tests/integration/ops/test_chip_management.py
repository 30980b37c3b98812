"""Chip management (§5.3.1.1, R13) through the commands: production and logistics per batch, projects."""

from __future__ import annotations

import json

from esimota.service import staff
from esimota.sim import fleetdata

from .test_reports_and_roles import esimota


async def test_delivery_progress_and_projects(pool, db_url, tmp_path):
    await staff.add(pool, "root", "Root", "admin", None)
    await staff.add(pool, "olga", "Olga", "operator", "root")
    await staff.add(pool, "sam", "Sam", "support", "root")
    fleet = await fleetdata.generate(pool, 4)
    home = tmp_path / "home"

    def run(*argv, who="olga"):
        proc = esimota(db_url, home, *argv, "--json", staff_user=who)
        return proc.returncode, json.loads(proc.stdout or "{}")

    code, out = run("delivery", "set", "--batch", fleet.batch, "--logistics", "shipped")
    assert (code, out["chips"]) == (0, 4)
    code, out = run("delivery", "set", "--batch", fleet.batch, "--eid", fleet.devices[0].eid, "--logistics",
                    "delivered", "--production", "produced")
    assert code == 0
    code, out = run("delivery", "set", "--batch", fleet.batch, "--logistics", "in_stock")
    assert (code, out["error"]) == (2, "LOGISTICS_ORDER")  # nothing half-written
    code, out = run("delivery", "progress", "--batch", fleet.batch, who="sam")
    assert out["logistics"] == {"shipped": 3, "delivered": 1} and out["delivered_share"] == 0.25
    code, out = run("delivery", "set", "--batch", fleet.batch, "--logistics", "delivered", who="sam")
    assert (code, out["error"]) == (2, "ROLE_FORBIDDEN")
    code, _ = run("project", "create", "--client", fleet.client_id, "--name", "meters", "--field", "智能表计")
    assert code == 0
    code, out = run("project", "assign", "--client", fleet.client_id, "--name", "meters", "--eid",
                    *[d.eid for d in fleet.devices[:3]])
    assert (code, out["assigned"]) == (0, 3)
    other = await fleetdata.generate(pool, 1, seed=3)
    code, out = run("project", "assign", "--client", fleet.client_id, "--name", "meters", "--eid",
                    fleet.devices[3].eid, other.devices[0].eid)
    assert (code, out["error"]) == (2, "IMPORT_REJECTED")  # every bad EID listed (issue 17)
    assert out["problems"] == [{"line": 2, "reason": "NOT_OWNER",
                                "detail": f"{other.devices[0].eid} is unknown or not allocated to this client"}]
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE project_id IS NOT NULL") == 3
    code, out = run("project", "list", "--client", fleet.client_id, who="sam")
    assert out["projects"] == [{"name": "meters", "application_field": "智能表计", "chips": 3, "written": 0}]
