"""What the platform says about itself (issue 17): metrics that move after a simulated write, the alert
rules and dashboard name only metrics that exist, and the log tells each session and write once."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from esimota.codec import bcp
from esimota.sim import fleetdata
from esimota.sim.device import Device
from tests.support.bip import apply_all, worker

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "esimota.json"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:  # never skipped: `make install` installs it (Debian package prometheus)
        pytest.fail("promtool not found: run `make install` (installs Debian's prometheus package) "
                    "or apt-get install prometheus")
    return path


def test_alert_rules_load_with_promtool():
    res = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout and "12 rules found" in res.stdout


def test_dashboard_loads_and_its_expressions_are_promql(tmp_path):
    """deploy/grafana/esimota.json imports as it is (its data source an input of the import) and every panel's
    expression is valid PromQL: promtool checks them as recording rules (JSON is YAML)."""
    board = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    exprs = []
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        exprs += [t["expr"] for t in panel["targets"]]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"esimota:dashboard:expr{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))
    res = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and f"{len(exprs)} rules found" in res.stdout, res.stdout + res.stderr


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _total(samples: dict, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def _named_in(text: str) -> set[str]:
    return set(re.findall(r"\besimota_[a-z0-9_]+", text))


async def _metrics(http, port: int) -> str:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        return await r.text()


async def test_a_simulated_write_moves_the_counters_and_every_named_metric_exists(pool, db_url, monkeypatch,
                                                                                  caplog):
    monkeypatch.setenv("ESIMOTA_QUALITY_INTERVAL", "0.2")  # the database gauges, refreshed by worker 0
    monkeypatch.setenv("ESIMOTA_CALLBACK_DELAY_SCALE", "0.001")
    caplog.set_level(logging.INFO, logger="esimota")
    fleet = await fleetdata.generate(pool, 1)
    [applied] = await apply_all(pool, fleet)
    async with worker(db_url) as p, aiohttp.ClientSession() as http:
        port = p.ports["admin_http"]  # /metrics is on the operations listener (DESIGN §6)
        before = _samples(await _metrics(http, port))
        out = await Device(fleet.devices[0], "127.0.0.1", p.ports["bip"]).run()
        assert out.ok and out.close_reason == bcp.CLOSE_DONE, out
        async with grpc.aio.insecure_channel(f"127.0.0.1:{p.ports['grpc']}") as ch:
            await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        async with http.get(f"http://127.0.0.1:{p.ports['http']}/api/v1/write/provinces") as r:  # a partner's call
            assert r.status == 401
        after = before
        for _ in range(100):  # the callback dispatcher attempts the partner's URL (refused here)
            after = _samples(await _metrics(http, port))
            refreshed = any(k[0] == "esimota_tasks_waiting" for k in after)  # worker 0's database gauges
            if refreshed and _total(after, "esimota_callbacks_total") > _total(before, "esimota_callbacks_total"):
                break
            await asyncio.sleep(0.1)
        text = await _metrics(http, port)

    def moved(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("esimota_writes_total", result="success") == 1
    for ftype in ("hello", "response", "report"):
        assert moved("esimota_bip_frames_total", direction="received", type=ftype) >= 1, ftype
    assert moved("esimota_bip_frames_total", direction="sent", type="command") >= 1
    assert moved("esimota_bip_closes_total", reason="done") >= 2  # after the script, after the REPORT
    assert moved("esimota_bip_sessions_total", end="done") >= 2
    assert moved("esimota_bip_commit_group_size_count") >= 2 and moved("esimota_bip_session_bytes_total") > 0
    assert _total(after, "esimota_callbacks_total") > _total(before, "esimota_callbacks_total")
    assert moved("esimota_grpc_requests_total", method="/grpc.health.v1.Health/Check", code="OK") == 1
    # every metric the alert rules and the dashboard name is exposed, with a sample
    names = {n for (n, _) in _samples(text)}
    for source in (RULES, DASHBOARD):
        missing = sorted(_named_in(source.read_text()) - names)
        assert missing == [], f"{source.name} names metrics /metrics lacks: {missing}"
    # one line per session end and per write outcome, no secret in any of them
    ends = [r for r in caplog.records if r.getMessage() == "bip session end" and r.eid == fleet.devices[0].eid]
    assert len(ends) >= 2 and all(r.frames > 0 and r.bytes > 0 and r.close_reason == "done" for r in ends)
    assert [r.task_id for r in ends if r.task_id] == [applied.task_id]  # the write's channel names its task
    [outcome] = [r for r in caplog.records if r.getMessage() == "write outcome"]
    assert (outcome.task_id, outcome.eid, outcome.result) == (applied.task_id, fleet.devices[0].eid, "success")
    logged = json.dumps([r.__dict__ for r in caplog.records], default=str).lower()
    for num in fleet.numbers:
        for secret in (num["ki"].hex(), num["opc"].hex(), num["imsi"]):
            assert secret.lower() not in logged
