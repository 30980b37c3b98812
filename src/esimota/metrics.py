"""Prometheus metrics of the platform; one registry per process, merged across workers when there are several.

Names follow the Prometheus conventions: counters end in `_total`, durations are `_seconds`
histograms, points in time `_timestamp_seconds`. Every metric is defined here, and
deploy/prometheus/alerts.yml and deploy/grafana/esimota.json use only these names (a test checks it).
Gauges that only worker 0 sets (from the database, every minute) merge with `livemax` across workers.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest

from .codec import bcp

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# -- the partner and staff APIs -------------------------------------------------------------------
HTTP_REQUESTS = Counter("esimota_http_requests_total", "HTTP requests by method, route and status code",
                        ["method", "route", "code"])
HTTP_LATENCY = Histogram("esimota_http_request_duration_seconds", "HTTP request latency by method and route",
                         ["method", "route"], buckets=_LATENCY)
GRPC_REQUESTS = Counter("esimota_grpc_requests_total", "gRPC calls by full method and status code",
                        ["method", "code"])
GRPC_LATENCY = Histogram("esimota_grpc_request_duration_seconds", "gRPC call latency by full method",
                         ["method"], buckets=_LATENCY)

# -- the BIP endpoint (DESIGN §5) -------------------------------------------------------------------
BIP_CHANNELS = Gauge("esimota_bip_channels_open", "BIP channels (card sessions) currently open",
                     multiprocess_mode="livesum")
BIP_CHANNELS_PEAK = Gauge("esimota_bip_channels_peak", "most BIP channels open at once (sum over workers)",
                          multiprocess_mode="livesum")
BIP_FRAMES = Counter("esimota_bip_frames_total", "BCP/1 frames by direction and type (DESIGN §5.1)",
                     ["direction", "type"])
BIP_CLOSES = Counter("esimota_bip_closes_total", "CLOSE frames the platform sent, by reason (DESIGN §5.1)",
                     ["reason"])
BIP_SESSIONS = Counter("esimota_bip_sessions_total", "BIP channels ended, by how they ended (a CLOSE "
                       "reason, timeout or dropped)", ["end"])
BIP_SESSION_BYTES = Counter("esimota_bip_session_bytes_total", "bytes of BCP/1 frames in both directions")
GROUP_SIZE = Histogram("esimota_bip_commit_group_size", "events made durable by one group commit (DESIGN §5.5)",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096))
GROUP_LATENCY = Histogram("esimota_bip_commit_group_duration_seconds",
                          "time to judge and commit one group of BIP events (DESIGN §5.5)", buckets=_LATENCY)
GROUP_FAILURES = Counter("esimota_bip_commit_group_failures_total", "groups whose commit failed as a whole "
                         "(cards answered CLOSE 07, retry after 30 s)")
WRITES = Counter("esimota_writes_total", "finished writes by result (success, chip_fault, data_error) and "
                 "REPORT 01 (not_communicating)", ["result"])

# -- callbacks (§7.3) ---------------------------------------------------------------------------------
CALLBACKS = Counter("esimota_callbacks_total", "callback attempts by outcome (delivered, retry, exhausted, "
                    "error: not sent)", ["outcome"])
CALLBACK_QUEUE = Gauge("esimota_callbacks_queued", "callbacks waiting for delivery, and those exhausted",
                       ["status"], multiprocess_mode="livemax")

# -- from the database, every minute (worker 0) --------------------------------------------------------
EXCEPTIONS_OPEN = Gauge("esimota_exceptions_open", "open exceptions of §8 by class, severity and whether "
                        "their handling deadline has passed", ["class", "severity", "overdue"],
                        multiprocess_mode="livemax")
TEMP_EXPIRING = Gauge("esimota_temporary_numbers_expiring", "temporary numbers of chips not yet written that "
                      "expire within the window (R12: alert 30 days ahead) or have expired", ["within"],
                      multiprocess_mode="livemax")
TASKS_WAITING = Gauge("esimota_tasks_waiting", "write tasks waiting for the card (state 2) or writing (3)",
                      ["state"], multiprocess_mode="livemax")
BACKUP_LAST = Gauge("esimota_backup_last_success_timestamp_seconds", "Unix time of the newest backup "
                    "(scheduled or manual) in ESIMOTA_BACKUP_DIR; 0 if there is none", multiprocess_mode="livemax")
BACKUP_INTERVAL = Gauge("esimota_backup_interval_seconds", "ESIMOTA_BACKUP_INTERVAL in seconds (0: off)",
                        multiprocess_mode="livemax")

FRAME_TYPES = bcp.FRAME_NAMES      # the label values of BIP_FRAMES, BIP_CLOSES and WRITES: the protocol's
CLOSE_REASONS = bcp.CLOSE_NAMES    # own names (DESIGN §5.1), defined once in codec/bcp.py


def close_reason_name(code: int) -> str:
    """The CLOSE reason of DESIGN §5.1 by name (`done`, `bad_mac`…), `reason_0xNN` for an unknown one."""
    return CLOSE_REASONS.get(code, f"reason_0x{code:02x}")


def render() -> tuple[bytes, str]:
    """The exposition text: this process's metrics, or every worker's when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _zero() -> None:
    """Known label sets start at 0, so that rate() and increase() see a series before its first event."""
    for result in bcp.REPORT_NAMES.values():
        WRITES.labels(result)
    for outcome in ("delivered", "retry", "exhausted", "error"):
        CALLBACKS.labels(outcome)
    for reason in CLOSE_REASONS.values():
        BIP_CLOSES.labels(reason)
    for direction in ("sent", "received"):
        for name in FRAME_TYPES.values():
            BIP_FRAMES.labels(direction, name)


_zero()
