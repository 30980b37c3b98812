"""What a group commit of BIP events tells once it is durable: group size and latency, and each write's outcome.

The channel service (service.bip) calls `group_begin` when it starts judging a group, `write_outcome`
where a write finishes inside the group's transaction, and `group_committed` after the commit. Each
group runs in an asyncio task of its own, so a ContextVar keeps groups in flight apart; a group that
rolls back (and is judged again) never reaches `group_committed`, so nothing is counted twice.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

from .. import metrics

log = logging.getLogger("esimota.bip")

_GROUP: contextvars.ContextVar[tuple[float, list] | None] = contextvars.ContextVar("esimota_group", default=None)
_WRITES: dict = {}  # result -> its child counter (labels() takes a lock per call)
RESULT_NAMES = {"success": "success", "chip fault": "chip_fault", "data error": "data_error"}


def group_begin() -> None:
    """A group is being judged (again, after a deadlock): start its clock and an empty outcome list."""
    _GROUP.set((time.perf_counter(), []))


def write_outcome(chip: Any, result: str) -> None:
    """A write finished inside the group's transaction (counted and logged once the group commits)."""
    group = _GROUP.get()
    if group is not None:
        group[1].append((chip, RESULT_NAMES.get(result, result.replace(" ", "_"))))


def group_committed(events: list, committed: Any) -> None:
    """The group is durable: observe its size and latency; count and log every write it finished."""
    group = _GROUP.get()
    _GROUP.set(None)
    metrics.GROUP_SIZE.observe(len(events))
    if group is not None:
        metrics.GROUP_LATENCY.observe(time.perf_counter() - group[0])
    finished = [(chip, "success") for chip, _ in committed.successes] + (group[1] if group else [])
    for chip, result in finished:
        counter = _WRITES.get(result)
        if counter is None:
            counter = _WRITES[result] = metrics.WRITES.labels(result)
        counter.inc()
        log.info("write outcome", extra={"task_id": chip["task_id"], "eid": chip["eid"], "result": result,
                                          "client": chip["client_ref"]})
