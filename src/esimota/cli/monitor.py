"""`esimota monitor scan|jobs|region|high-risk|blacklist`: number monitoring (R32), a detector pass (§8) and the
background jobs (issue 18)."""

from __future__ import annotations

import argparse

from .common import run_with_pool, staff_flags


async def _monitor(pool, args: argparse.Namespace) -> dict:
    from ..service import admin, jobs, monitoring, ops, ops_notify, staff
    what = args.monitor_action
    if what == "jobs":
        await staff.authorize(pool, args.as_, "exception.read")
        return {"ok": True, **await jobs.status(pool, job=args.job, state=args.status, limit=args.limit)}
    if what == "scan":
        await staff.authorize(pool, args.as_, "exception.handle")
        res = await ops.scan(pool)
        alerts = await monitoring.scan(pool)
        return {"ok": True, "exceptions": res.opened, "escalated": res.escalated, "resolved": res.resolved,
                "alerts": alerts, "notified": await ops_notify.queue_alerts(pool)}  # one post per run
    actor = await staff.authorize(pool, args.as_, "monitor.configure")
    if what == "region":
        cities = [c.strip() for c in (args.cities or "").split(",") if c.strip()]
        await monitoring.restrict_region(pool, args.msisdn, cities, actor)
        return {"ok": True, "msisdn": args.msisdn, "cities": cities, "restricted": bool(cities)}
    if what == "high-risk":
        reason = None if args.remove else (args.reason or "configured")
        await monitoring.set_high_risk(pool, args.city, reason, actor)
        return {"ok": True, "city": args.city, "high_risk": not args.remove, "reason": reason}
    await admin.blacklist(pool, args.kind, args.value, args.reason, actor=actor)
    return {"ok": True, args.kind: args.value, "blacklisted": True, "reason": args.reason}


def register(sub) -> None:
    mon = sub.add_parser("monitor", help="number monitoring (R32) and a detector pass (§8)")
    acts = mon.add_subparsers(dest="monitor_action", metavar="ACTION", required=True)
    staff_flags(acts.add_parser("scan", help="run every exception detector and monitoring check once"))
    jobs = staff_flags(acts.add_parser("jobs", help="background jobs: which node holds each, how recent periods ended"))
    jobs.add_argument("--job", help="one job (callbacks, backups, regulator-exports, …)")
    jobs.add_argument("--status", help="running, done or failed")
    jobs.add_argument("--limit", type=int, default=20, help="periods shown, newest first (default 20)")
    region = staff_flags(acts.add_parser("region", help="restrict a fixed-location number to cities"))
    region.add_argument("msisdn")
    region.add_argument("--cities", default="", help="comma-separated; empty lifts the restriction")
    risk = staff_flags(acts.add_parser("high-risk", help="add or remove a high-risk area"))
    risk.add_argument("city")
    risk.add_argument("--reason")
    risk.add_argument("--remove", action="store_true")
    bl = staff_flags(acts.add_parser("blacklist", help="blacklist an EID or IMEI"))
    bl.add_argument("kind", choices=["eid", "imei"])
    bl.add_argument("value")
    bl.add_argument("--reason", required=True)
    for p in acts.choices.values():
        p.set_defaults(func=run_with_pool(_monitor))
