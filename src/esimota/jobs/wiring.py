"""Plug the operations jobs into `esimota serve` (worker 0): detectors, monitoring, notifications, retention, backups."""

from __future__ import annotations

from .. import server
from . import backups, ops


def _add(*jobs) -> None:
    for job in jobs:
        if job not in server.JOBS:
            server.JOBS.append(job)


_add(ops.watchdog_job, ops.monitoring_job, ops.notify_job, ops.quality_job, ops.retention_job, backups.job)
