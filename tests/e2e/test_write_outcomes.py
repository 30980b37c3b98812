"""Every way a write ends, against `esimota serve` with the simulated card over real sockets (DESIGN §3, §5.4).

For each outcome — success, chip fault, read-back mismatch, number not communicating then success, a card
that lies about its ICCID, an early REPORT, a drop at a frame, a cancel — the card's state, its operational
number, the task events, the exceptions (open or closed) and the partner's callback are what the design
names; after each failure (and the cancel) a designated re-apply with the same ICCID/MSISDN creates a task
and a write that completes (DESIGN §3: the number is given back to the client it was allocated to).
"""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from esimota.service import admin
from esimota.sim import fleetdata
from esimota.sim.device import Device, Faults
from tests.support.platform import serve
from tests.support.receiver import CALLBACK_FIELDS, LOOPBACK_RECEIVER, Receiver

OUTCOMES = ["success", "chip_fault", "readback", "no_comm", "lying_iccid", "early_report", "drop", "cancel"]
FAILURES = {"chip_fault": ("CHIP_FAULT", "chip fault"), "readback": ("DATA_ERROR", "data error"),
            "lying_iccid": ("DATA_ERROR", "data error")}


@pytest.fixture
async def setup(tmp_path, db_url, pool):
    partner = Receiver()
    url = await partner.start()
    fleet = await fleetdata.generate(pool, len(OUTCOMES), callback_url=url)
    await admin.allocate_numbers(pool, fleet.client_id, [n["iccid"] for n in fleet.numbers])  # `numbers allocate`
    served = serve(tmp_path / "home", db_url, tls=False, extra_env={"ESIMOTA_CALLBACK_DELAY_SCALE": "0.01",
                                                                     **LOOPBACK_RECEIVER})
    try:
        yield served, fleet, partner
    finally:
        served.stop(signal.SIGKILL)
        await partner.stop()


class Api:
    """The partner's HTTP calls of §7.2.2 against the served bridge."""

    def __init__(self, http: aiohttp.ClientSession, served, fleet) -> None:
        self.http, self.base, self.fleet, self.token = http, served.base_url, fleet, ""

    async def get(self, path: str, **params) -> dict:
        async with self.http.get(self.base + path, params=dict(params, token=self.token)) as r:
            body = await r.json()
            assert body["code"] == r.status, body
            return body

    async def login(self) -> None:
        body = await self.get("/api/v1/auth/token", client_id=self.fleet.client_id,
                              client_secret=self.fleet.client_secret)
        self.token = body["token"]

    async def apply(self, eid: str, number: dict) -> str:
        body = await self.get("/api/v1/write/apply", eid=eid, write_type=0, iccid=number["iccid"],
                              msisdn=number["msisdn"])
        assert body["code"] == 200 and body["card_status"] == 2, body
        return body["task_id"]


def _faults(outcome: str, number: dict) -> Faults:
    return {"chip_fault": Faults(chip_fault=True), "readback": Faults(corrupt_readback=True),
            "no_comm": Faults(no_comm=1), "lying_iccid": Faults(report_iccid="89860000000000000999"),
            "early_report": Faults(early_report=1), "drop": Faults(drop_at_frame=2)}.get(outcome, Faults())


async def _card(pool, eid: str) -> dict:
    row = await pool.fetchrow("SELECT c.state, n.status, n.chip_id = c.id AS bound_here FROM chips c "
                              "JOIN tasks t ON t.chip_id = c.id JOIN numbers n ON n.id = t.number_id "
                              "WHERE c.eid = $1 ORDER BY t.id DESC LIMIT 1", eid)
    return dict(row)


async def _events(pool, task_id: str) -> list[tuple]:
    rows = await pool.fetch("SELECT operation, from_state, to_state FROM task_events e JOIN tasks t "
                            "ON t.id = e.task_id WHERE t.task_id = $1 ORDER BY e.id", task_id)
    return [tuple(r) for r in rows]


async def _exceptions(pool, eid: str) -> dict:
    rows = await pool.fetch("SELECT kind, closed_at IS NOT NULL AS closed, resolution FROM exceptions e "
                            "JOIN chips c ON c.id = e.chip_id WHERE c.eid = $1", eid)
    return {r["kind"]: (r["closed"], r["resolution"]) for r in rows}


async def _callbacks(partner: Receiver, task_id: str, n: int = 1) -> list[dict]:
    for _ in range(300):  # delivered by the served worker's dispatcher
        if len(partner.of(task_id)) >= n:
            break
        await asyncio.sleep(0.05)
    got = partner.of(task_id)
    assert len(got) == n and all(set(b) == CALLBACK_FIELDS for b in got), got
    return got


async def _first_attempt(pool, api, served, partner, outcome, spec, number) -> str:
    """Apply, then the card's first power-on with its fault; checks what that outcome leaves."""
    task = await api.apply(spec.eid, number)
    if outcome == "cancel":
        body = await api.get("/api/v1/write/cancel", task_id=task)
        assert body["code"] == 200 and body["cancel_time"]
        assert await _card(pool, spec.eid) == {"state": 1, "status": "available", "bound_here": None}
        assert await _events(pool, task) == [("apply", 1, 2), ("cancel", 2, 1)]
        queued = await pool.fetchval("SELECT count(*) FROM callback_outbox o JOIN tasks t ON t.id = o.task_id "
                                     "WHERE t.task_id = $1", task)
        assert queued == 0  # §7.3: a write's result is called back; a cancel is answered to the caller
        return task
    spec.faults = _faults(outcome, number)
    dev = Device(spec, "127.0.0.1", served.bip_port)
    out = await dev.run()
    spec.counter = dev.counter
    status = await api.get("/api/v1/write/status", task_id=task)
    if outcome in FAILURES:
        kind, result = FAILURES[outcome]
        assert await _card(pool, spec.eid) == {"state": 5, "status": "available", "bound_here": None}
        assert (await _events(pool, task))[-1] == ("fail", 3, 5)
        assert await pool.fetchval("SELECT result FROM tasks WHERE task_id = $1", task) == result
        assert (await _exceptions(pool, spec.eid))[kind][0] is False
        [cb] = await _callbacks(partner, task)
        assert (cb["card_status"], cb["write_result"], cb["write_time"], cb["status_desc"]) == (5, "failure", "", "写卡失败")
        assert (status["card_status"], status["write_time"]) == (5, None)
        return task
    assert out.ok, out
    await _check_written(pool, partner, spec.eid, task, number, status)
    ops = [e[0] for e in await _events(pool, task)]
    exceptions = await _exceptions(pool, spec.eid)
    if outcome == "no_comm":
        assert ops == ["apply", "power_on", "not_communicating", "succeed"]
        assert exceptions["NUMBER_NOT_COMMUNICATING"][0] is True  # closed by the success, with its reason
        assert "communicates" in exceptions["NUMBER_NOT_COMMUNICATING"][1]
    elif outcome == "early_report":
        assert out.early_close == 4  # §5.4 step 5: not judged before the script was acknowledged
        assert ops == ["apply", "power_on", "power_on", "succeed"]
        assert exceptions["EARLY_REPORT"][0] is True
    elif outcome == "drop":
        assert ops == ["apply", "power_on", "power_on", "succeed"] and out.channels == 3
    else:
        assert ops == ["apply", "power_on", "succeed"] and exceptions == {}
    return task


async def _check_written(pool, partner, eid, task, number, status) -> None:
    assert await _card(pool, eid) == {"state": 4, "status": "bound", "bound_here": True}
    [cb] = await _callbacks(partner, task)
    assert (cb["card_status"], cb["write_result"], cb["status_desc"]) == (4, "success", "写卡成功")
    assert (cb["iccid"], cb["msisdn"], cb["eid"]) == (number["iccid"], number["msisdn"], eid)
    assert cb["write_time"].endswith("+08:00")
    assert (status["card_status"], status["progress"]) == (4, 100) and status["write_time"] == cb["write_time"]


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_each_outcome_leaves_what_the_design_names(pool, setup, outcome):
    served, fleet, partner = setup
    i = OUTCOMES.index(outcome)
    spec, number = fleet.devices[i], fleet.numbers[i]
    async with aiohttp.ClientSession() as http:
        api = Api(http, served, fleet)
        await api.login()
        first = await _first_attempt(pool, api, served, partner, outcome, spec, number)
        if outcome not in FAILURES and outcome != "cancel":
            return
        # the same client, the same ICCID/MSISDN: a new task, and a write that completes (DESIGN §3)
        task = await api.apply(spec.eid, number)
        assert task != first
        spec.faults = Faults()
        dev = Device(spec, "127.0.0.1", served.bip_port)
        assert (await dev.run()).ok
        await _check_written(pool, partner, spec.eid, task, number, await api.get("/api/v1/write/status", task_id=task))
        if outcome in FAILURES:
            kind = FAILURES[outcome][0]
            closed, why = (await _exceptions(pool, spec.eid))[kind]
            assert closed and "re-apply" in why  # closed by itself, the reason recorded
