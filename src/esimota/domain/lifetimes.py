"""Temporary-number lifetimes (§5.3.1.3, R12): 270 d for 4G, 180 d for NB-IoT, alert 30 d before."""

from __future__ import annotations

import datetime as dt

from ..errors import InvalidArgument, PermissionDenied

LIFETIME_DAYS = {"4G": 270, "NB-IoT": 180}
ALERT_DAYS = 30


def validate_network_type(value: str) -> str:
    """`4G` or `NB-IoT` (DESIGN §7 chips import)."""
    if value not in LIFETIME_DAYS:
        raise InvalidArgument("network_type must be 4G or NB-IoT", reason="NETWORK_TYPE_INVALID")
    return value


def expires_on(open_time: dt.date, network_type: str) -> dt.date:
    """The first day on which the temporary number is no longer valid."""
    return open_time + dt.timedelta(days=LIFETIME_DAYS[validate_network_type(network_type)])


def alert_on(open_time: dt.date, network_type: str) -> dt.date:
    """The day the 30-day expiry alert fires (§5.3.1.3)."""
    return expires_on(open_time, network_type) - dt.timedelta(days=ALERT_DAYS)


def is_expired(open_time: dt.date, network_type: str, today: dt.date) -> bool:
    return today >= expires_on(open_time, network_type)


def check_not_expired(open_time: dt.date, network_type: str, today: dt.date) -> None:
    """An apply on an expired temporary number fails (table 4, last row; DESIGN §3)."""
    if is_expired(open_time, network_type, today):
        raise PermissionDenied("the temporary number has expired; it must be re-provisioned first",
                               reason="TEMP_NUMBER_EXPIRED")
