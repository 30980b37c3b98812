"""`esimota delivery …` and `esimota project …`: chip production, logistics and projects (R13)."""

from __future__ import annotations

import argparse

from ..errors import InvalidArgument
from . import formats
from .common import numbered_lines, run_with_pool, staff_flags


async def _chips(pool, args: argparse.Namespace) -> dict:
    from ..service import chip_management, staff
    what = args.chip_action
    if what in ("progress", "list"):
        await staff.authorize(pool, args.as_, "chip.read")
        if what == "progress":
            return {"ok": True, **await chip_management.progress(pool, args.batch)}
        return {"ok": True, "projects": await chip_management.projects(pool, args.client)}
    actor = await staff.authorize(pool, args.as_, "chip.manage")
    eids = [e.strip() for e in (getattr(args, "eid", None) or []) if e.strip()] or None
    where: dict = {}
    if getattr(args, "file", None):
        from_file, lines = numbered_lines(args.file, "eid")
        if not eids:  # problems told as FILE:LINE
            where = {"lines": lines, "source": args.file}
        eids = (eids or []) + from_file
    if what == "set":
        n = await chip_management.set_status(pool, args.batch, actor, eids=eids, production=args.production,
                                       logistics=args.logistics)
        return {"ok": True, "chips": n}
    if what == "create":
        return {"ok": True, "project_id": await chip_management.create_project(pool, args.client, args.name, args.field, actor)}
    if not eids:
        raise InvalidArgument("give --eid or --file", reason="EID_REQUIRED")
    return {"ok": True, "assigned": await chip_management.assign(pool, args.client, args.name, eids, actor, **where)}


def register(sub) -> None:
    dl = sub.add_parser("delivery", help="production progress and logistics delivery per batch (R13)")
    acts = dl.add_subparsers(dest="chip_action", metavar="ACTION", required=True)
    staff_flags(acts.add_parser("progress", help="counts by production, logistics and lifecycle state")) \
        .add_argument("--batch", required=True)
    st = staff_flags(acts.add_parser("set", help="set production and/or logistics status (whole batch or --eid)"))
    st.add_argument("--batch", required=True)
    st.add_argument("--eid", nargs="+")
    st.add_argument("--production", help="ordered, in_production, produced, qc_failed")
    st.add_argument("--logistics", help="in_stock, shipped, delivered, returned")
    pr = sub.add_parser("project", help="projects grouping a client's chips (R13)")
    pacts = pr.add_subparsers(dest="chip_action", metavar="ACTION", required=True)
    create = staff_flags(pacts.add_parser("create", help="create a project (or change its application field)"))
    assign = staff_flags(pacts.add_parser("assign", help="put chips into a project", epilog=formats.EID_LIST,
                                          formatter_class=argparse.RawDescriptionHelpFormatter))
    for p in (create, assign):
        p.add_argument("--client", required=True)
        p.add_argument("--name", required=True)
    create.add_argument("--field", help="application field (应用领域), for the half-year report")
    assign.add_argument("--eid", nargs="+")
    assign.add_argument("--file", help="one EID per line")
    staff_flags(pacts.add_parser("list", help="a client's projects")).add_argument("--client", required=True)
    for p in list(acts.choices.values()) + list(pacts.choices.values()):
        p.set_defaults(func=run_with_pool(_chips))
