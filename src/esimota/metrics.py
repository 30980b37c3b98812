"""Prometheus metrics of the platform; one registry per process, merged across workers when there are several."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY

HTTP_REQUESTS = Counter("esimota_http_requests_total", "HTTP bridge requests", ["route", "code"])
HTTP_LATENCY = Histogram("esimota_http_request_seconds", "HTTP bridge latency", ["route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
BIP_CHANNELS = Gauge("esimota_bip_channels_open", "BIP channels currently open", multiprocess_mode="livesum")
BIP_CHANNELS_PEAK = Gauge("esimota_bip_channels_peak", "most BIP channels open at once (sum over workers)",
                          multiprocess_mode="livesum")
BIP_FRAMES = Counter("esimota_bip_frames_total", "BIP frames received", ["type"])
WRITES = Counter("esimota_writes_total", "finished writes by result", ["result"])


def render() -> tuple[bytes, str]:
    """The exposition text: this process's metrics, or every worker's when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
