"""The state machine of §6.3 table 2 (R11, DESIGN §3): every allowed and every forbidden transition."""

import itertools

import pytest

from esimota.domain.lifecycle import TRANSITIONS, CardState, Op, allowed, next_state, progress
from esimota.errors import PermissionDenied

S = CardState
EXPECTED = {
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
ALL = list(itertools.product(CardState, Op))


def test_the_table_is_exactly_table_2():
    """R11: the one table holds the allowed operations of §6.3 table 2 and nothing more."""
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize("state,op", [k for k in ALL if k in EXPECTED], ids=str)
def test_allowed_transition(state, op):
    """R11, DESIGN §3 'allowed next': each allowed operation leads where table 2 says."""
    assert allowed(state, op)
    assert next_state(int(state), op) is EXPECTED[(state, op)]


@pytest.mark.parametrize("state,op", [k for k in ALL if k not in EXPECTED], ids=str)
def test_forbidden_transition(state, op):
    """R11, R20: anything not in table 2 is refused with a stable reason; 4 refuses apply as ALREADY_WRITTEN."""
    assert not allowed(state, op)
    with pytest.raises(PermissionDenied) as err:
        next_state(int(state), op)
    if state is S.WRITE_SUCCEEDED and op in (Op.APPLY, Op.APPLY_REJECTED):
        assert err.value.reason == "ALREADY_WRITTEN"
    else:
        assert err.value.reason == "STATE_NOT_ALLOWED"


def test_names_are_those_of_table_2():
    """DESIGN §3: status_desc is the 中文 name."""
    assert [s.zh for s in CardState] == ["待写卡", "待开机上电", "写卡中", "写卡成功", "写卡失败", "申请失败"]


@pytest.mark.parametrize("args,expected", [
    ((2,), 0), ((3, 0, 10), 0), ((3, 5, 10), 45), ((3, 10, 10), 90), ((3, 10, 10, True), 95),
    ((4,), 100), ((3, 3, 0), 0), ((5, 9, 10), 0), ((1,), 0), ((6,), 0),
])
def test_progress(args, expected):
    """R8, DESIGN §3: 0 at 2; acked/total × 90 while writing; 95 when the report is awaited; 100 at 4."""
    assert progress(*args) == expected
