"""`esimota staff add|roles|password|disable|revoke|review|token`: staff accounts and roles (R28)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from ..errors import InvalidArgument
from .common import run_with_pool, staff_flags


def _read_password(args: argparse.Namespace) -> str:
    """The new console password: one line on stdin with --password-stdin, else typed twice (never an argument:
    it would sit in the shell history and the process list)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"new console password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise InvalidArgument("the two passwords differ", reason="PASSWORD_MISMATCH")
    return first


async def _staff(pool, args: argparse.Namespace) -> dict:
    from ..service import staff
    what = args.staff_action
    if what == "add":
        row = await staff.add(pool, args.username, args.name, args.roles, args.as_, phone=args.phone)
    elif what == "roles":
        row = await staff.set_roles(pool, args.username, args.roles, args.as_)
    elif what == "password":
        from ..service import console_auth
        return {"ok": True, **await console_auth.set_password(pool, args.username, _read_password(args),
                                                              args.as_ or os.environ.get("ESIMOTA_STAFF") or args.username)}
    elif what == "disable":
        row = await staff.disable(pool, args.username, args.as_)
    elif what == "revoke":
        from ..service import staff_auth
        return {"ok": True, **await staff_auth.revoke_tokens(pool, args.username, args.as_)}
    elif what == "token":
        from ..service import staff_auth
        return {"ok": True, **await staff_auth.issue_token(pool, staff_auth.signer_from_config(), args.username,
                                                           args.as_)}
    else:
        return {"ok": True, **await staff.review(pool, args.as_, mark=args.mark)}
    return {"ok": True, "username": row["username"], "roles": list(row["roles"]),
            "disabled": row["disabled_at"] is not None}


def register(sub) -> None:
    st = sub.add_parser("staff", help="staff accounts and roles (R28)")
    acts = st.add_subparsers(dest="staff_action", metavar="ACTION", required=True)
    add = staff_flags(acts.add_parser("add", help="add an account (the first one must be an admin)"))
    add.add_argument("username")
    add.add_argument("--roles", required=True, help="admin,operator,auditor,support")
    add.add_argument("--name", default="")
    add.add_argument("--phone")
    roles = staff_flags(acts.add_parser("roles", help="replace an account's roles"))
    roles.add_argument("username")
    roles.add_argument("--roles", required=True)
    pw = staff_flags(acts.add_parser("password", help="set the account's console password (scrypt; its sessions end)"))
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    staff_flags(acts.add_parser("disable", help="revoke a leaver")).add_argument("username")
    staff_flags(acts.add_parser("revoke", help="end every token of an account (every process, within 5 s)")) \
        .add_argument("username")
    staff_flags(acts.add_parser("review", help="permission review: unused, stale, review due")) \
        .add_argument("--mark", action="store_true", help="record the review (admin)")
    staff_flags(acts.add_parser("token", help="your 24 h token for the AdminService rpcs (prints the token)")) \
        .add_argument("username", nargs="?", help="default: --as / ESIMOTA_STAFF")
    for p in acts.choices.values():
        p.set_defaults(func=run_with_pool(_staff))
    acts.choices["token"].set_defaults(func=run_with_pool(_staff, text=lambda out: out["token"]))
