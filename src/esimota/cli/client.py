"""`esimota client create|rotate-secret|update|whitelist|permissions|disable`: partner accounts (§6.2.1.1, R31)."""

from __future__ import annotations

import argparse

from .common import as_staff, emit, run_async, staff_flags


def _client_view(client) -> dict:
    return {"client_id": client.client_id, "name": client.name, "phone": client.phone,
            "ip_whitelist": list(client.ip_whitelist), "permissions": list(client.permissions),
            "callback_url": client.callback_url, "rate_limit_per_min": client.rate_limit_per_min,
            "disabled": client.disabled}


async def _client(args: argparse.Namespace) -> int:
    """Only administrators manage clients (R31); the actor is in every audit row."""
    payload = await as_staff(args, "client.manage", lambda pool, actor: _client_action(pool, args, actor))
    emit(args, payload)
    return 0


async def _client_action(pool, args: argparse.Namespace, actor: str) -> dict:
    """One `client …` action; secrets are printed once here and never stored in clear (R15, R17)."""
    from ..service import admin
    if args.client_action == "create":
        new = await admin.create_client(pool, name=args.name, phone=args.phone, ip=args.ip,
                                        callback_url=args.callback_url, permissions=args.permissions,
                                        rate_limit_per_min=args.rate_limit, actor=actor)
        return {"ok": True, **_client_view(new.client), "client_secret": new.client_secret,
                "callback_secret": new.callback_secret}
    if args.client_action == "rotate-secret":
        client, secret = await admin.rotate_secret(pool, args.client_id, callback=args.callback, actor=actor)
        key = "callback_secret" if args.callback else "client_secret"
        return {"ok": True, "client_id": client.client_id, key: secret}
    if args.client_action == "update":
        ip = ",".join(args.ip) if args.ip else None
        client = await admin.update_client(pool, args.client_id, rate_limit_per_min=args.rate_limit, ip=ip,
                                           actor=actor)
    elif args.client_action == "whitelist":
        client = await admin.set_whitelist(pool, args.client_id, args.ip, actor=actor)
    elif args.client_action == "permissions":
        client = await admin.set_permissions(pool, args.client_id, args.permissions, actor=actor)
    else:
        client = await admin.disable_client(pool, args.client_id, actor=actor)
    return {"ok": True, **_client_view(client)}


def register(sub) -> None:
    client = sub.add_parser("client", help="partner accounts (§6.2.1.1)")
    actions = client.add_subparsers(dest="client_action", metavar="ACTION", required=True)
    create = staff_flags(actions.add_parser("create", help="create a client; prints its secrets once"))
    create.add_argument("--name", required=True)
    create.add_argument("--phone", required=True, help="registered phone number (R15)")
    create.add_argument("--ip", required=True, help="whitelisted CIDR[,CIDR…]")
    create.add_argument("--callback-url", required=True)
    create.add_argument("--permissions", default="write,chip,number")
    create.add_argument("--rate-limit", type=int, default=600, help="calls per minute")
    rotate = staff_flags(actions.add_parser("rotate-secret", help="new client secret (or --callback secret)"))
    rotate.add_argument("client_id", help="the client's id or name")
    rotate.add_argument("--callback", action="store_true", help="rotate the callback signing secret")
    upd = staff_flags(actions.add_parser(
        "update", help="change the rate limit and/or the IP whitelist (running workers apply it within 5 s)"))
    upd.add_argument("client_id", help="the client's id or name")
    upd.add_argument("--rate-limit", type=int, help="calls per minute (1 … 1,000,000)")
    upd.add_argument("--ip", nargs="+", metavar="CIDR", help="replace the whitelist: CIDR … (or CIDR,CIDR…)")
    wl = staff_flags(actions.add_parser("whitelist", help="replace the IP whitelist"))
    wl.add_argument("client_id", help="the client's id or name")
    wl.add_argument("--ip", required=True)
    perms = staff_flags(actions.add_parser("permissions", help="replace the API permissions"))
    perms.add_argument("client_id", help="the client's id or name")
    perms.add_argument("--permissions", required=True)
    disable = staff_flags(actions.add_parser("disable", help="revoke a client"))
    disable.add_argument("client_id", help="the client's id or name")
    client.set_defaults(func=run_async(_client))
