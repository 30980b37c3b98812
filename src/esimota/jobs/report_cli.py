"""`esimota report|backup|staff|monitor|delivery|project …`: operations commands, each checked against staff roles (R28)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument


def _cli():
    from .. import cli  # imported late: cli imports this module while building its parser
    return cli


async def _with_pool(fn, args: argparse.Namespace) -> Any:
    from .. import runtime
    pool = await runtime.open_pool(min_size=1, max_size=2)
    try:
        return await fn(pool, args)
    finally:
        await pool.close()


def _read(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}", reason="FILE_UNREADABLE") from None


# -- report ---------------------------------------------------------------------------------------
async def _report(pool, args: argparse.Namespace) -> dict:
    from ..service import ops, reports, reports_export, staff
    what = args.report_action
    if what in ("close", "reported"):
        actor = await staff.authorize(pool, args.as_, "exception.handle")
        if what == "reported":
            await ops.mark_reported(pool, args.id, actor)
            return {"ok": True, "id": args.id, "reported": True}
        row = await ops.close(pool, args.id, actor, args.resolution, _read(args.report_file))
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
        return {"ok": True, "exports": await reports_export.list_exports(pool, actor)}
    await staff.authorize(pool, args.as_, "report.read")
    if what == "exceptions":
        start, end = reports.month_range(args.month)
        return {"ok": True, "month": args.month, **await reports.exception_review(pool, start, end)}
    return {"ok": True, **await reports.quality(pool, reports.day(args.from_, "--from"), reports.day(args.to, "--to"))}


def _verify(args: argparse.Namespace) -> int:
    """The receiver's side needs no database: the export directory and the platform's public key."""
    from ..service import reports_export
    key = _read(args.public_key) if args.public_key else reports_export.public_key_hex()
    out = reports_export.verify(args.directory, key)
    _cli().emit(args, out, f"export {out['kind']} {out['period']} verified: signature and SHA-256 of every file")
    return 0


# -- staff ------------------------------------------------------------------------------------------
async def _staff(pool, args: argparse.Namespace) -> dict:
    from ..service import staff
    what = args.staff_action
    if what == "add":
        row = await staff.add(pool, args.username, args.name, args.roles, args.as_, phone=args.phone)
    elif what == "roles":
        row = await staff.set_roles(pool, args.username, args.roles, args.as_)
    elif what == "disable":
        row = await staff.disable(pool, args.username, args.as_)
    elif what == "token":
        from ..service import staff_auth
        return {"ok": True, **await staff_auth.issue_token(pool, staff_auth.signer_from_config(), args.username,
                                                           args.as_)}
    else:
        return {"ok": True, **await staff.review(pool, args.as_, mark=args.mark)}
    return {"ok": True, "username": row["username"], "roles": list(row["roles"]),
            "disabled": row["disabled_at"] is not None}


# -- monitor ----------------------------------------------------------------------------------------
async def _monitor(pool, args: argparse.Namespace) -> dict:
    from ..service import admin, monitoring, ops, staff
    what = args.monitor_action
    if what == "scan":
        await staff.authorize(pool, args.as_, "exception.handle")
        res = await ops.scan(pool)
        return {"ok": True, "exceptions": res.opened, "escalated": res.escalated, "resolved": res.resolved,
                "alerts": await monitoring.scan(pool)}
    actor = await staff.authorize(pool, args.as_, "monitor.configure")
    if what == "region":
        await monitoring.restrict_region(pool, args.msisdn, (args.cities or "").split(","), actor)
    elif what == "high-risk":
        await monitoring.set_high_risk(pool, args.city, None if args.remove else (args.reason or "configured"), actor)
    else:
        await admin.blacklist(pool, args.kind, args.value, args.reason, actor=actor)
    return {"ok": True}


# -- backup ----------------------------------------------------------------------------------------
async def _backup(pool, args: argparse.Namespace) -> dict:
    from .. import runtime
    from ..service import backup, staff
    from ..store import audit
    if args.backup_action == "restore":
        actor = await staff.authorize(pool, args.as_, "backup.restore")
        out = await backup.restore(args.file, args.database_url)
        await audit.record(pool, actor, "backup.restore", Path(args.file).name, rows=out["rows"])
        return {"ok": True, **out}
    actor = await staff.authorize(pool, args.as_, "backup.create")
    keep = backup.keep_days()
    out_dir, copy_dir = backup.locations(args.dir, args.copy_dir)
    if args.backup_action == "prune":
        gone = backup.prune([d for d in (out_dir, copy_dir) if d], keep)
        await audit.record(pool, actor, "backup.prune", None, deleted=len(gone))
        return {"ok": True, "deleted": gone}
    out = await backup.create(runtime.database_url(), out_dir, copy_dir, actor, keep_days=keep)
    await audit.record(pool, actor, "backup.create", Path(out["file"]).name, offsite=copy_dir is not None)
    return {"ok": True, **out, "offsite": copy_dir is not None}


def _backup_parsers(sub) -> None:
    bk = sub.add_parser("backup", help="encrypted backups, off-site copy, restore, retention (§9.1.2, R26)")
    acts = bk.add_subparsers(dest="backup_action", metavar="ACTION", required=True)
    for name, text in (("create", "pg_dump, AES-256-GCM, manifest, copy to the second location"),
                       ("prune", "delete backups older than ESIMOTA_BACKUP_KEEP_DAYS (30)")):
        p = _common(acts.add_parser(name, help=text))
        p.add_argument("--dir", help="default ESIMOTA_BACKUP_DIR or ESIMOTA_HOME/backups")
        p.add_argument("--copy-dir", help="the off-site location (default ESIMOTA_BACKUP_COPY_DIR)")
    restore = _common(acts.add_parser("restore", help="restore into an EMPTY database, then compare every table"))
    restore.add_argument("file", help="the .dump.enc file (its manifest beside it)")
    restore.add_argument("--database-url", required=True, help="the empty target database")
    for p in acts.choices.values():
        p.set_defaults(func=_run(_backup))


# -- chip management (R13) -------------------------------------------------------------------------
async def _chips(pool, args: argparse.Namespace) -> dict:
    from ..service import ops_chips, staff
    what = args.chip_action
    if what in ("progress", "list"):
        await staff.authorize(pool, args.as_, "chip.read")
        if what == "progress":
            return {"ok": True, **await ops_chips.progress(pool, args.batch)}
        return {"ok": True, "projects": await ops_chips.projects(pool, args.client)}
    actor = await staff.authorize(pool, args.as_, "chip.manage")
    eids = [e.strip() for e in (getattr(args, "eid", None) or []) if e.strip()] or None
    if getattr(args, "file", None):
        eids = (eids or []) + [ln.strip() for ln in (_read(args.file) or "").splitlines() if ln.strip()]
    if what == "set":
        n = await ops_chips.set_status(pool, args.batch, actor, eids=eids, production=args.production,
                                       logistics=args.logistics)
        return {"ok": True, "chips": n}
    if what == "create":
        return {"ok": True, "project_id": await ops_chips.create_project(pool, args.client, args.name, args.field, actor)}
    if not eids:
        raise InvalidArgument("give --eid or --file", reason="EID_REQUIRED")
    return {"ok": True, "assigned": await ops_chips.assign(pool, args.client, args.name, eids, actor)}


def _chip_parsers(sub) -> None:
    dl = sub.add_parser("delivery", help="production progress and logistics delivery per batch (R13)")
    acts = dl.add_subparsers(dest="chip_action", metavar="ACTION", required=True)
    _common(acts.add_parser("progress", help="counts by production, logistics and lifecycle state")) \
        .add_argument("--batch", required=True)
    st = _common(acts.add_parser("set", help="set production and/or logistics status (whole batch or --eid)"))
    st.add_argument("--batch", required=True)
    st.add_argument("--eid", nargs="+")
    st.add_argument("--production", help="ordered, in_production, produced, qc_failed")
    st.add_argument("--logistics", help="in_stock, shipped, delivered, returned")
    pr = sub.add_parser("project", help="projects grouping a client's chips (R13)")
    pacts = pr.add_subparsers(dest="chip_action", metavar="ACTION", required=True)
    create = _common(pacts.add_parser("create", help="create a project (or change its application field)"))
    assign = _common(pacts.add_parser("assign", help="put chips into a project"))
    for p in (create, assign):
        p.add_argument("--client", required=True)
        p.add_argument("--name", required=True)
    create.add_argument("--field", help="application field (应用领域), for the half-year report")
    assign.add_argument("--eid", nargs="+")
    assign.add_argument("--file", help="one EID per line")
    _common(pacts.add_parser("list", help="a client's projects")).add_argument("--client", required=True)
    for p in list(acts.choices.values()) + list(pacts.choices.values()):
        p.set_defaults(func=_run(_chips))


def _run(fn, text=None):
    def runner(args: argparse.Namespace) -> int:
        import asyncio
        payload = asyncio.run(_with_pool(fn, args))
        _cli().emit(args, payload, text(payload) if text else None)
        return 0
    return runner


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return _cli().staff_flags(p)


def _report_parsers(sub) -> None:
    rep = sub.add_parser("report", help="exception review, quality indicators, regulator reports (§8.3, §10.3)")
    acts = rep.add_subparsers(dest="report_action", metavar="ACTION", required=True)
    _common(acts.add_parser("exceptions", help="monthly review: rate per class, share handled in time (R24)")) \
        .add_argument("--month", required=True, help="YYYY-MM")
    q = _common(acts.add_parser("quality", help="write / interface success rates, exceptions in time (R29)"))
    q.add_argument("--from", dest="from_", required=True)
    q.add_argument("--to", required=True)
    _common(acts.add_parser("subscribers", help="monthly subscriber export as of the last day 24:00 (R34)")) \
        .add_argument("--month", required=True, help="YYYY-MM")
    _common(acts.add_parser("service", help="half-year service report (R33)")) \
        .add_argument("--half", required=True, help="YYYY-H1 or YYYY-H2")
    _common(acts.add_parser("exports", help="list the exports kept (audited)"))
    _common(acts.add_parser("open", help="where one export is (audited)")).add_argument("id", type=int)
    close = _common(acts.add_parser("close", help="close an exception (severe: --report-file required)"))
    close.add_argument("id", type=int)
    close.add_argument("--resolution", required=True)
    close.add_argument("--report-file", help="the handling report of §8.3.1")
    _common(acts.add_parser("reported", help="mark a severe exception reported (§8.3.1)")).add_argument("id", type=int)
    for p in acts.choices.values():
        p.set_defaults(func=_run(_report))
    verify = acts.add_parser("verify", help="the receiver's check of an export: signature, SHA-256, rows")
    verify.add_argument("directory")
    verify.add_argument("--public-key", help="file with the platform's public key (hex), given out of band")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_verify)


def _staff_parsers(sub) -> None:
    st = sub.add_parser("staff", help="staff accounts and roles (R28)")
    acts = st.add_subparsers(dest="staff_action", metavar="ACTION", required=True)
    add = _common(acts.add_parser("add", help="add an account (the first one must be an admin)"))
    add.add_argument("username")
    add.add_argument("--roles", required=True, help="admin,operator,auditor,support")
    add.add_argument("--name", default="")
    add.add_argument("--phone")
    roles = _common(acts.add_parser("roles", help="replace an account's roles"))
    roles.add_argument("username")
    roles.add_argument("--roles", required=True)
    _common(acts.add_parser("disable", help="revoke a leaver")).add_argument("username")
    _common(acts.add_parser("review", help="permission review: unused, stale, review due")) \
        .add_argument("--mark", action="store_true", help="record the review (admin)")
    _common(acts.add_parser("token", help="your 24 h token for the AdminService rpcs (prints the token)")) \
        .add_argument("username", nargs="?", help="default: --as / ESIMOTA_STAFF")
    for p in acts.choices.values():
        p.set_defaults(func=_run(_staff))
    acts.choices["token"].set_defaults(func=_run(_staff, text=lambda out: out["token"]))


def _monitor_parsers(sub) -> None:
    mon = sub.add_parser("monitor", help="number monitoring (R32) and a detector pass (§8)")
    acts = mon.add_subparsers(dest="monitor_action", metavar="ACTION", required=True)
    _common(acts.add_parser("scan", help="run every exception detector and monitoring check once"))
    region = _common(acts.add_parser("region", help="restrict a fixed-location number to cities"))
    region.add_argument("msisdn")
    region.add_argument("--cities", default="", help="comma-separated; empty lifts the restriction")
    risk = _common(acts.add_parser("high-risk", help="add or remove a high-risk area"))
    risk.add_argument("city")
    risk.add_argument("--reason")
    risk.add_argument("--remove", action="store_true")
    bl = _common(acts.add_parser("blacklist", help="blacklist an EID or IMEI"))
    bl.add_argument("kind", choices=["eid", "imei"])
    bl.add_argument("value")
    bl.add_argument("--reason", required=True)
    for p in acts.choices.values():
        p.set_defaults(func=_run(_monitor))


def register(sub) -> None:
    """Add report, staff, monitor and backup to the `esimota` command (DESIGN §7)."""
    _report_parsers(sub)
    _staff_parsers(sub)
    _monitor_parsers(sub)
    _backup_parsers(sub)
    _chip_parsers(sub)
