"""`esimota report …`: exception review, quality indicators, regulator exports — each checked against staff roles (R28)."""

from __future__ import annotations

import argparse

from .common import emit, read_file, run_with_pool, staff_flags


async def _report(pool, args: argparse.Namespace) -> dict:
    from ..service import ops, reports, reports_export, staff
    what = args.report_action
    if what in ("close", "reported"):
        actor = await staff.authorize(pool, args.as_, "exception.handle")
        if what == "reported":
            await ops.mark_reported(pool, args.id, actor)
            return {"ok": True, "id": args.id, "reported": True}
        row = await ops.close(pool, args.id, actor, args.resolution, read_file(args.report_file))
        return {"ok": True, "id": row["id"], "kind": row["kind"], "closed_at": row["closed_at"]}
    if what in ("subscribers", "service"):
        actor = await staff.authorize(pool, args.as_, "export.create")
        if what == "subscribers":
            return {"ok": True, **await reports_export.export_subscribers(pool, args.month, actor)}
        out = await reports_export.export_service_report(pool, args.half, actor)
        return {"ok": True, **out}
    if what in ("exports", "open"):
        actor = await staff.authorize(pool, args.as_, "export.read")
        if what == "open":
            return {"ok": True, **await reports_export.open_export(pool, args.id, actor)}
        return {"ok": True, "exports": await reports_export.list_exports(pool, actor, kind=args.kind,
                                                                          period=args.period)}
    await staff.authorize(pool, args.as_, "report.read")
    if what == "exceptions":
        start, end = reports.month_range(args.month)
        return {"ok": True, "month": args.month, **await reports.exception_review(pool, start, end)}
    return {"ok": True, **await reports.quality(pool, reports.day(args.from_, "--from"), reports.day(args.to, "--to"))}


def _verify(args: argparse.Namespace) -> int:
    """The receiver's side needs no database: the export directory and the platform's public key."""
    from ..service import reports_export
    key = read_file(args.public_key) if args.public_key else reports_export.public_key_hex()
    out = reports_export.verify(args.directory, key)
    emit(args, out)
    return 0


def register(sub) -> None:
    rep = sub.add_parser("report", help="exception review, quality indicators, regulator reports (§8.3, §10.3)")
    acts = rep.add_subparsers(dest="report_action", metavar="ACTION", required=True)
    staff_flags(acts.add_parser("exceptions", help="monthly review: rate per class, share handled in time (R24)")) \
        .add_argument("--month", required=True, help="YYYY-MM")
    q = staff_flags(acts.add_parser("quality", help="write / interface success rates, exceptions in time (R29)"))
    q.add_argument("--from", dest="from_", required=True)
    q.add_argument("--to", required=True)
    staff_flags(acts.add_parser("subscribers", help="monthly subscriber export as of the last day 24:00 (R34)")) \
        .add_argument("--month", required=True, help="YYYY-MM")
    staff_flags(acts.add_parser("service", help="half-year service report (R33)")) \
        .add_argument("--half", required=True, help="YYYY-H1 or YYYY-H2")
    listing = staff_flags(acts.add_parser("exports", help="list the exports, by hand or on schedule (audited)"))
    listing.add_argument("--kind", choices=("subscribers", "service"), help="R34 monthly, R33 half-year")
    listing.add_argument("--period", help="YYYY-MM or YYYY-H1 / YYYY-H2")
    staff_flags(acts.add_parser("open", help="where one export is (audited)")).add_argument("id", type=int)
    close = staff_flags(acts.add_parser("close", help="close an exception (severe: --report-file required)"))
    close.add_argument("id", type=int)
    close.add_argument("--resolution", required=True)
    close.add_argument("--report-file", help="the handling report of §8.3.1")
    staff_flags(acts.add_parser("reported", help="mark a severe exception reported (§8.3.1)")).add_argument("id", type=int)
    for p in acts.choices.values():
        p.set_defaults(func=run_with_pool(_report))
    verify = acts.add_parser("verify", help="the receiver's check of an export: signature, SHA-256, rows")
    verify.add_argument("directory")
    verify.add_argument("--public-key", help="file with the platform's public key (hex), given out of band")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_verify)
