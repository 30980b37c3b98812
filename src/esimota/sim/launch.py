"""Run `esimota serve` as a real process on free loopback ports (end-to-end tests, fleet benchmarks)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running platform: its ports, its home, its log lines (parsed JSON)."""

    proc: subprocess.Popen
    home: Path
    http_port: int
    grpc_port: int
    bip_port: int
    tls: bool
    lines: list = field(default_factory=list)
    admin_port: int = 0       # the operations listener: AdminService, IngestService (gRPC)
    admin_http_port: int = 0  # and /metrics (HTTPS)

    @property
    def admin_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.admin_http_port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}"

    @property
    def pids(self) -> list[int]:
        return worker_pids(self)

    @property
    def cert(self) -> Path:
        return self.home / "tls" / "cert.pem"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
        """Send `sig`, wait; returns (exit code, seconds it took)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        return code, time.monotonic() - t0


def _reader(proc: subprocess.Popen, lines: list) -> None:
    for raw in proc.stderr:  # type: ignore[union-attr]
        try:
            lines.append(json.loads(raw))
        except ValueError:
            lines.append({"raw": raw.rstrip()})


def worker_pids(self) -> list[int]:
    return sorted({ln["pid"] for ln in self.lines if ln.get("msg") == "worker ready"})


def _status_kb(pids: list[int], field: str) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of the processes' peak resident set sizes (VmHWM), MB."""
    return round(_status_kb(pids, "VmHWM:") / 1024, 1)


def rss_mb(pids: list[int]) -> float:
    """Sum of the processes' current resident set sizes (VmRSS), MB."""
    return round(_status_kb(pids, "VmRSS:") / 1024, 1)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (/proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def postgres_pids() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in ("postgres", "postmaster"):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def serve(home: Path, database_url: str, *, workers: int = 1, tls: bool = True,
          extra_env: dict | None = None, timeout: float = 60.0) -> Served:
    """Start the platform and wait until every worker said it is ready."""
    ports = [free_port() for _ in range(5)]
    env = dict(os.environ, ESIMOTA_HOME=str(home), DATABASE_URL=database_url, ESIMOTA_ADMIN_HOST="127.0.0.1",
               ESIMOTA_ADMIN_PORT=str(ports[3]), ESIMOTA_ADMIN_HTTP_PORT=str(ports[4]), **(extra_env or {}))
    env.pop("ESIMOTA_WORKER_ID", None)
    argv = [sys.executable, "-m", "esimota.cli", "serve", "--http-port", str(ports[0]),
            "--grpc-port", str(ports[1]), "--bip-port", str(ports[2]), "--workers", str(workers)]
    if not tls:
        argv.append("--no-tls")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    s = Served(proc, home, ports[0], ports[1], ports[2], tls, admin_port=ports[3], admin_http_port=ports[4])
    threading.Thread(target=_reader, args=(proc, s.lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for ln in list(s.lines) if ln.get("msg") == "worker ready") >= workers:
            return s
        if proc.poll() is not None:
            raise RuntimeError(f"esimota serve exited {proc.returncode}: {s.lines[-5:]}")
        time.sleep(0.05)
    s.stop(signal.SIGKILL)
    raise RuntimeError(f"esimota serve not ready in {timeout}s: {s.lines[-5:]}")
