"""schemathesis against /openapi.json of a real `esimota serve` over TLS: no 5xx, no schema violation (§7.1.1)."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import pytest

from esimota.sim import fleetdata
from tests.support.platform import serve

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

EXAMPLES = int(os.environ.get("ESIMOTA_SCHEMATHESIS_EXAMPLES", "60"))


def _fuzz(base_url: str, cert: str, token: str) -> list[str]:
    """Every operation with generated (valid and invalid) parameters; returns the failures."""
    from schemathesis import checks

    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", verify=cert)
    excluded = [checks.positive_data_acceptance, checks.negative_data_rejection, checks.missing_required_header,
                checks.unsupported_method, checks.ignored_auth]
    failures = []
    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            if isinstance(case.query, dict):  # a generated token= would win over the Bearer header
                case.query.pop("token", None)
            case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, verify=cert,
                                   excluded_checks=excluded)
        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    return failures


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_openapi_fuzz_has_no_server_error(tmp_path, db_url, pool):
    os.environ.setdefault("ESIMOTA_MASTER_KEY", "5a" * 32)
    fleet = await fleetdata.generate(pool, 4)
    platform = serve(tmp_path / "home", db_url)
    try:
        async with aiohttp.ClientSession() as http:
            import ssl

            ctx = ssl.create_default_context(cafile=str(platform.cert))
            async with http.get(platform.base_url + "/api/v1/auth/token", ssl=ctx,
                                params={"client_id": fleet.client_id, "client_secret": fleet.client_secret}) as r:
                token = (await r.json())["token"]
        failures = await asyncio.to_thread(_fuzz, platform.base_url, str(platform.cert), token)
        assert not failures, "\n".join(failures)
        assert not [ln for ln in platform.lines if ln.get("msg") == "internal error"]
    finally:
        platform.stop(signal.SIGTERM)
    codes = dict(await pool.fetch("SELECT code, count(*) FROM api_calls GROUP BY code"))
    assert sum(codes.values()) > 10 * EXAMPLES and 200 in codes and not [c for c in codes if c >= 500], codes
