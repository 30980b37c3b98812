"""Issue 15: chips import conflicts (DESIGN §7), alerts that reach people (R12, R32), the IMEI of the usage and
location feeds (R32 card–device separation), a late usage record (R32 quotas read the current month)."""

import datetime as dt

import aiohttp
import pytest

from esimota.errors import ImportRejected
from esimota.service import imports, lists, monitoring, ops_notify, usage, writing
from esimota.service.common import CST
from esimota.service.writing import ApplyRequest
from tests.support.receiver import Receiver

from ..conftest import eid, imei, msisdn, write_chips


async def test_chips_import_of_an_existing_eid_with_other_values_is_a_conflict(pool, seeded, tmp_path):
    """An EID stored with other values is reported with what differs; nothing of the file is imported."""
    path = write_chips(tmp_path / "again.csv", [1, 2, 50])
    text = path.read_text().replace(",EM-1,", ",EM-2,", 1)  # chip 1's model changed
    path.write_text(text)
    with pytest.raises(ImportRejected) as err:
        await imports.import_chips(pool, str(path), "B1")
    assert err.value.problems == [(2, "EID_EXISTS", f"{eid(1)} is stored with other values: chip_model")]
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE eid = $1", eid(50)) == 0
    same = await imports.import_chips(pool, str(write_chips(tmp_path / "same.csv", [1, 2])), "B1")
    assert (same.imported, same.already_present) == (0, 2)  # the same rows again add nothing


async def test_a_late_usage_record_never_overwrites_the_current_month(pool, seeded):
    """R32: the month's figure that quota alerts read is this month's; last month's late record stays there."""
    now = dt.datetime.now(CST)
    last_month = (now.replace(day=1) - dt.timedelta(days=3)).isoformat()
    stored, bad = await usage.ingest_usage(pool, [("u1", msisdn(1), "", 5.0, now.isoformat())])
    assert (stored, bad) == (1, [])
    stored, bad = await usage.ingest_usage(pool, [("u0", msisdn(1), "", 95.0, last_month)])
    assert (stored, bad) == (1, [])
    assert float(await pool.fetchval("SELECT used_flow_mb FROM numbers WHERE msisdn = $1", msisdn(1))) == 5.0
    await monitoring.scan(pool)
    assert (await lists.list_alerts(pool, kind="QUOTA_WARNING")).total == 0  # 95 MB was last month's


async def test_feeds_with_another_imei_raise_card_device_separation(pool, seeded):
    """R32: a usage or location record carrying an IMEI other than the chip's bound one opens the alert;
    the chip's own IMEI, or none, opens nothing."""
    a, _ = seeded
    for i in (1, 2):
        await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, "44"))  # numbers 1, 2 reserved for chips 1, 2
    numbers = {r["chip"]: r["msisdn"] for r in await pool.fetch(
        "SELECT c.eid AS chip, n.msisdn FROM tasks t JOIN chips c ON c.id = t.chip_id JOIN numbers n "
        "ON n.id = t.number_id")}
    now = dt.datetime.now(CST).isoformat()
    await usage.ingest_usage(pool, [("r1", numbers[eid(1)], "", 1.0, now, imei(1)),
                                    ("r2", numbers[eid(1)], "", 1.0, now, "")])
    assert (await lists.list_alerts(pool, kind="CARD_DEVICE_SEPARATION")).total == 0
    await usage.ingest_usage(pool, [("r3", numbers[eid(1)], "", 1.0, now, imei(77))])
    await usage.ingest_locations(pool, [(numbers[eid(2)], "", "深圳", now, imei(78))])
    got = await lists.list_alerts(pool, kind="CARD_DEVICE_SEPARATION", open_=True)
    assert sorted(r.subject for r in got.rows) == [eid(1), eid(2)]
    assert {r.severity for r in got.rows} == {"severe"}
    details = sorted(r.detail for r in got.rows)
    assert details[0].startswith("location: IMEI " + imei(78)) and details[1].startswith("usage: IMEI " + imei(77))
    stored, bad = await usage.ingest_usage(pool, [("r4", numbers[eid(1)], "", 1.0, now, "12345")])
    assert stored == 0 and bad[0][1].reason == "IMEI_INVALID"


@pytest.fixture
async def webhook(monkeypatch):
    """The operator's notification receiver: a real HTTP server on loopback recording each post."""
    hook = Receiver()
    monkeypatch.setenv("ESIMOTA_NOTIFY_URL", await hook.start("/notify"))
    yield hook.bodies
    await hook.stop()


async def test_each_new_alert_is_sent_once_grouped_per_detector_run(pool, seeded, tmp_path, webhook):
    """R12 expiry warnings (general) reach the webhook: one post for a run's alerts, never again."""
    soon = dt.date.today() - dt.timedelta(days=250)  # 4G: 20 days left
    await imports.import_chips(pool, str(write_chips(tmp_path / "old.csv", [60, 61, 62], open_time=soon)), "B1")
    await monitoring.scan(pool)
    assert await ops_notify.queue_alerts(pool) == 1
    assert await ops_notify.queue_alerts(pool) == 0
    async with aiohttp.ClientSession() as session:
        assert await ops_notify.deliver(pool, session) == 1
        assert await ops_notify.deliver(pool, session) == 0
        [post] = webhook
        assert post["source"] == "alerts" and post["count"] == 3
        assert sorted(a["subject"] for a in post["alerts"]) == [eid(60), eid(61), eid(62)]
        assert {a["kind"] for a in post["alerts"]} == {"TEMP_NUMBER_EXPIRING"}
        await imports.import_chips(pool, str(write_chips(tmp_path / "old2.csv", [63], open_time=soon)), "B1")
        await monitoring.scan(pool)
        assert await ops_notify.queue(pool) == 1  # the notify job's pass queues the new one too
        assert await ops_notify.deliver(pool, session) == 1
    assert [a["subject"] for a in webhook[1]["alerts"]] == [eid(63)]
    listed = await lists.list_alerts(pool, kind="TEMP_NUMBER_EXPIRING")
    assert listed.total == 4 and all(r.notified_at is not None for r in listed.rows)
