"""`esimota usage import FILE.csv` (§7.2.3.3) and `esimota api admin-token`: the API's commands (DESIGN §7)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import formats
from .common import emit, fail, run_async


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


def _admin_token(args: argparse.Namespace) -> int:
    """The token the operator's feeds present to IngestService (derived from the master key).

    AdminService takes staff tokens instead (`esimota staff token`, R28).
    """
    from ..service import auth

    emit(args, {"admin_token": auth.signer_from_config().admin_token},
                auth.signer_from_config().admin_token)
    return 0


def register(sub) -> None:
    usage = sub.add_parser("usage", help="usage records of operational numbers (§7.2.3.3)")
    imp = usage.add_subparsers(dest="usage_action", metavar="ACTION", required=True).add_parser(
        "import", help="import usage records: record_id,msisdn,iccid,used_mb,recorded_at",
        epilog=formats.USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("file")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=run_async(_usage_import))
    api = sub.add_parser("api", help="the partner API")
    tok = api.add_subparsers(dest="api_action", metavar="ACTION", required=True).add_parser(
        "admin-token", help="print the token of the IngestService feeds (AdminService: esimota staff token)")
    tok.add_argument("--json", action="store_true")
    tok.set_defaults(func=_admin_token)
