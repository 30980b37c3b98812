"""The reduced reliability campaign (issue 7) in `make test`: every case's "held" equals its "tried"."""

from __future__ import annotations

import pytest

from benchmarks import reliability as rel


def _assert_held(case: rel.Case) -> None:
    lines = [c.line() for c in case.checks]
    assert case.checks and all(c.ok for c in case.checks), f"{case.name}: {lines} {case.figures}"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("whole", [False, True], ids=["one_worker", "whole_server"])
async def test_kill_9_then_restart_loses_nothing(pg_server_url, whole):
    _assert_held(await rel.case_kill(pg_server_url, 150, 2, whole, 12.0))


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_postgresql_outage_is_survived_without_restart():
    # a throw-away cluster of the test's own: the shared one under .data is never stopped
    _assert_held(await rel.case_db_outage(150, 10.0, 12.0))


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_dropped_channels_complete_by_resume(pg_server_url):
    _assert_held(await rel.case_drops(pg_server_url, 200, 0.2, 8.0))


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_duplicate_applies_and_cancels_racing_power_ons(pg_server_url):
    _assert_held(await rel.case_race(pg_server_url, 200, 8.0))


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_hostile_bip_frames(pg_server_url):
    _assert_held(await rel.case_hostile_bip(pg_server_url, 10_000, 100))


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_hostile_http_requests_and_oversized_bodies(pg_server_url):
    case = await rel.case_hostile_http(pg_server_url, 25, loris=0)
    case.checks = [c for c in case.checks if "slow-loris" not in c.name]
    _assert_held(case)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_slow_loris_connections_are_cut(pg_server_url):
    case = await rel.case_hostile_http(pg_server_url, 1, big=0, loris=5, limit=60.0)
    loris = [c for c in case.checks if "slow-loris" in c.name]
    assert len(loris) == 2 and all(c.ok for c in loris), [c.line() for c in loris]  # first and kept-alive


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_two_nodes_one_killed_loses_nothing_and_runs_each_job_once_per_period(pg_server_url):
    """Issue 18: two nodes (127.0.0.2, 127.0.0.3) over one database, the jobs' leader killed -9 twice."""
    _assert_held(await rel.case_two_nodes(pg_server_url, 150, 2, 12.0))
