"""`esimota usage import FILE.csv` (§7.2.3.3) and `esimota api admin-token`: the API's commands (DESIGN §7)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import formats
from .common import emit, fail, run_async, run_with_pool


async def _usage_import(args: argparse.Namespace) -> int:
    from .. import runtime
    from ..errors import EsimotaError, InvalidArgument
    from ..service import usage

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(args, InvalidArgument(f"{args.file}: {exc}", reason="FILE_UNREADABLE"))
    pool = await runtime.open_pool(min_size=1, max_size=2)
    try:
        stored = await usage.import_usage_csv(pool, text, source=args.file)
    except EsimotaError as exc:
        return fail(args, exc)
    finally:
        await pool.close()
    emit(args, {"ok": True, "stored": stored})
    return 0


async def _admin_token(pool, args: argparse.Namespace) -> dict:
    """An ordinary 24 h staff token of the named account (AdminService, IngestService feeds), audited.

    It takes the master key, not a staff identity: whoever holds the key can sign any token."""
    from ..service import staff_auth

    return {"ok": True, **await staff_auth.admin_token(pool, staff_auth.signer_from_config(), args.username)}


def register(sub) -> None:
    usage = sub.add_parser("usage", help="usage records of operational numbers (§7.2.3.3)")
    imp = usage.add_subparsers(dest="usage_action", metavar="ACTION", required=True).add_parser(
        "import", help="import usage records: record_id,msisdn,iccid,used_mb,recorded_at",
        epilog=formats.USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("file")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=run_async(_usage_import))
    api = sub.add_parser("api", help="staff tokens for the operations listener's gRPC feeds (admin-token)")
    tok = api.add_subparsers(dest="api_action", metavar="ACTION", required=True).add_parser(
        "admin-token", help="a 24 h staff token of the named account for the operations listener (audited)")
    tok.add_argument("username", help="the staff account the token is for")
    tok.add_argument("--json", action="store_true")
    tok.set_defaults(func=run_with_pool(_admin_token, text=lambda out: out["token"]))
