"""The card lifecycle of §6.3 table 2 (DESIGN §3, R11): states, operations and ONE transition table."""

from __future__ import annotations

import enum

from ..errors import PermissionDenied


class CardState(enum.IntEnum):
    """The six card states; the integer is the wire code `card_status` (DESIGN §6)."""

    PENDING_WRITE = 1
    AWAITING_POWER_ON = 2
    WRITING = 3
    WRITE_SUCCEEDED = 4
    WRITE_FAILED = 5
    APPLY_FAILED = 6

    @property
    def zh(self) -> str:
        """The 中文 name of table 2, sent as `status_desc`."""
        return STATUS_DESC[self]


STATUS_DESC = {
    CardState.PENDING_WRITE: "待写卡",
    CardState.AWAITING_POWER_ON: "待开机上电",
    CardState.WRITING: "写卡中",
    CardState.WRITE_SUCCEEDED: "写卡成功",
    CardState.WRITE_FAILED: "写卡失败",
    CardState.APPLY_FAILED: "申请失败",
}


class Op(str, enum.Enum):
    """What happens to a card; stored as the `operation` of a task event."""

    APPLY = "apply"                        # a valid apply creates a task (§6.2.2.2)
    APPLY_REJECTED = "apply_rejected"      # an apply failed validation (table 2, 申请失败)
    CANCEL = "cancel"                      # §7.2.2.4: only in 待开机上电
    POWER_ON = "power_on"                  # HELLO opened a BIP channel (§6.2.3.3); from 3 it resumes
    SUCCEED = "succeed"                    # REPORT 00: the operational number communicates (§6.2.4.1)
    NOT_COMMUNICATING = "not_communicating"  # REPORT 01: stays 写卡中 (§6.2.4.1, table 4)
    FAIL = "fail"                          # REPORT 02/03, repeated transfer failure (table 4)


S = CardState
# The one table of allowed transitions (§6.3 table 2, DESIGN §3). Anything absent is forbidden.
TRANSITIONS: dict[tuple[CardState, Op], CardState] = {
    (S.PENDING_WRITE, Op.APPLY): S.AWAITING_POWER_ON,
    (S.WRITE_FAILED, Op.APPLY): S.AWAITING_POWER_ON,
    (S.APPLY_FAILED, Op.APPLY): S.AWAITING_POWER_ON,
    (S.PENDING_WRITE, Op.APPLY_REJECTED): S.APPLY_FAILED,
    (S.WRITE_FAILED, Op.APPLY_REJECTED): S.APPLY_FAILED,
    (S.APPLY_FAILED, Op.APPLY_REJECTED): S.APPLY_FAILED,
    (S.AWAITING_POWER_ON, Op.CANCEL): S.PENDING_WRITE,
    (S.AWAITING_POWER_ON, Op.POWER_ON): S.WRITING,
    (S.WRITING, Op.POWER_ON): S.WRITING,
    (S.WRITING, Op.SUCCEED): S.WRITE_SUCCEEDED,
    (S.WRITING, Op.NOT_COMMUNICATING): S.WRITING,
    (S.WRITING, Op.FAIL): S.WRITE_FAILED,
}
del S

#: The edges of table 2 as (from, to) codes: what the database's card_transitions holds (migration 0012),
#: whose trigger refuses any other change of a card's or a task's state.
EDGES = frozenset((int(f), int(t)) for (f, _op), t in TRANSITIONS.items())

# States in which a task is open: a repeated apply returns it (DESIGN §3 idempotence, R18).
OPEN_STATES = frozenset({CardState.AWAITING_POWER_ON, CardState.WRITING})


def allowed(state: int, op: Op) -> bool:
    """Whether `op` is allowed on a card in `state`."""
    return (CardState(state), op) in TRANSITIONS


def next_state(state: int, op: Op) -> CardState:
    """The state after `op`, or PermissionDenied(STATE_NOT_ALLOWED / ALREADY_WRITTEN) if forbidden."""
    current = CardState(state)
    try:
        return TRANSITIONS[(current, op)]
    except KeyError:
        pass
    if current is CardState.WRITE_SUCCEEDED and op in (Op.APPLY, Op.APPLY_REJECTED):
        # §8.2.1 table 3: "运营号已被写入"; the card stays 4 (DESIGN §3)
        raise PermissionDenied("operational number already written", reason="ALREADY_WRITTEN")
    raise PermissionDenied(f"{op.value} is not allowed in state {int(current)} ({current.zh})",
                           reason="STATE_NOT_ALLOWED")


def progress(state: int, acked: int = 0, total: int = 0, script_done: bool = False) -> int:
    """Progress 0–100 derived as DESIGN §3 says (R8): 0 at 2, acked/total×90 writing, 95, 100 at 4."""
    current = CardState(state)
    if current is CardState.WRITE_SUCCEEDED:
        return 100
    if current is not CardState.WRITING:
        return 0
    if script_done:
        return 95
    if total <= 0:
        return 0
    return min(90, (90 * max(acked, 0)) // total)
