"""`esimota backup create|prune|restore`: encrypted backups, off-site copy, restore, retention (§9.1.2, R26)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import run_with_pool, staff_flags


async def _backup(pool, args: argparse.Namespace) -> dict:
    from .. import runtime
    from ..service import backup, staff
    from ..store import audit
    if args.backup_action == "restore":
        actor = await staff.authorize(pool, args.as_, "backup.restore")
        out = await backup.restore(args.file, args.database_url)
        await audit.record(pool, actor, "backup.restore", Path(args.file).name, rows=out["rows"])
        return {"ok": True, **out, "next": backup.RESTORE_KEYS}
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


def register(sub) -> None:
    bk = sub.add_parser("backup", help="encrypted backups, off-site copy, restore, retention (§9.1.2, R26)")
    acts = bk.add_subparsers(dest="backup_action", metavar="ACTION", required=True)
    for name, text in (("create", "pg_dump, AES-256-GCM, manifest, copy to the second location"),
                       ("prune", "delete backups older than ESIMOTA_BACKUP_KEEP_DAYS (30)")):
        p = staff_flags(acts.add_parser(name, help=text))
        p.add_argument("--dir", help="default ESIMOTA_BACKUP_DIR or ESIMOTA_HOME/backups")
        p.add_argument("--copy-dir", help="the off-site location (default ESIMOTA_BACKUP_COPY_DIR)")
    restore = staff_flags(acts.add_parser("restore", help="restore into an EMPTY database, then compare every table"))
    restore.add_argument("file", help="the .dump.enc file (its manifest beside it)")
    restore.add_argument("--database-url", required=True, help="the empty target database")
    for p in acts.choices.values():
        p.set_defaults(func=run_with_pool(_backup))
