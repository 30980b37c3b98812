"""Configuration from the environment and flags; everything on disk lives under ESIMOTA_HOME (DESIGN §7)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError


def home() -> Path:
    """ESIMOTA_HOME (default ./.data), created on first use with mode 0700."""
    path = Path(os.environ.get("ESIMOTA_HOME", ".data")).resolve()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _write_secret(path: Path, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)


def master_key(base: Path | None = None) -> bytes:
    """The at-rest master key (32 bytes): ESIMOTA_MASTER_KEY (64 hex digits) or HOME/master.key.

    Generated on first start with mode 0600 on the embedded database only; production passes its own.
    """
    return key_from_env_or_file("ESIMOTA_MASTER_KEY", (base or home()) / "master.key")


def node_id() -> str:
    """This node's name in leases, job runs, backups and exports: ESIMOTA_NODE_ID, default the host name.

    Not the pid: a node that restarts is the same node. Two nodes on one host must each set their own."""
    return (os.environ.get("ESIMOTA_NODE_ID") or "").strip() or socket.gethostname()


def generates_keys() -> bool:
    """Keys are generated only for the project-local (embedded) database: with DATABASE_URL the nodes
    share one database, and a key made up by one node would not be the others' (issue 18)."""
    return not os.environ.get("DATABASE_URL")


def require_keys(backups_on: bool, exports_on: bool) -> None:
    """At start under DATABASE_URL: the master key, and the backup and export signing keys when those
    jobs are on, must be given (environment or file); raises ConfigError KEY_MISSING naming the first."""
    needed = [("ESIMOTA_MASTER_KEY", "master.key")]
    if backups_on:
        needed.append(("ESIMOTA_BACKUP_KEY", "backup.key"))
    if exports_on:
        needed.append(("ESIMOTA_EXPORT_SIGNING_KEY", "export-signing.key"))
    for env_name, name in needed:
        key_from_env_or_file(env_name, home() / name)


def key_from_env_or_file(env_name: str, path: Path) -> bytes:
    """A 32-byte key: the environment variable (64 hex digits), else `path`; generated once with mode
    0600 when `generates_keys()`, else a missing key is ConfigError KEY_MISSING."""
    env = os.environ.get(env_name)
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ConfigError(f"{env_name} must be 64 hex digits (32 bytes)")
        return key
    if not path.exists():
        if not generates_keys():
            raise ConfigError(f"{env_name} is not set and {path} does not exist; with DATABASE_URL set no key is "
                              "generated: give every node the same key", reason="KEY_MISSING")
        try:
            _write_secret(path, secrets.token_hex(32) + "\n")
        except FileExistsError:  # another worker created it first
            pass
    key = bytes.fromhex(path.read_text().strip())
    if len(key) != 32:
        raise ConfigError(f"{path} does not hold a 32-byte hex key")
    return key


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _positive_env(name: str, default: int) -> int:
    value = _int_env(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, not {value}")
    return value


def _hours_env(name: str) -> float:
    """Hours from the environment; unset, empty or 0 means off."""
    raw = os.environ.get(name, "").strip()
    try:
        hours = float(raw) if raw else 0.0
    except ValueError:
        raise ConfigError(f"{name} must be a number of hours, not {raw!r}") from None
    if hours < 0:
        raise ConfigError(f"{name} must not be negative")
    return hours


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def cidr_list(name: str) -> tuple[Network, ...]:
    """A comma-separated list of CIDRs (or addresses) from the environment; empty when unset."""
    out = []
    for item in (i.strip() for i in os.environ.get(name, "").split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: not an address or CIDR: {item!r}") from None
    return tuple(out)


def allow_http_callbacks() -> bool:
    """ESIMOTA_ALLOW_HTTP_CALLBACKS=1: plain-http callback URLs, for development only (R25 wants https)."""
    return os.environ.get("ESIMOTA_ALLOW_HTTP_CALLBACKS", "") == "1"


@dataclass
class Settings:
    """What `esimota serve` runs with; flags override the environment."""

    host: str = field(default_factory=lambda: os.environ.get("ESIMOTA_HOST", "127.0.0.1"))
    http_port: int = field(default_factory=lambda: _int_env("ESIMOTA_HTTP_PORT", 8080))
    grpc_port: int = field(default_factory=lambda: _int_env("ESIMOTA_GRPC_PORT", 50051))
    bip_port: int = field(default_factory=lambda: _int_env("ESIMOTA_BIP_PORT", 7700))
    bip_host: str = field(default_factory=lambda: os.environ.get("ESIMOTA_BIP_HOST", "0.0.0.0"))
    workers: int = field(default_factory=lambda: _int_env("ESIMOTA_WORKERS", 1))
    tls: bool = field(default_factory=lambda: os.environ.get("ESIMOTA_NO_TLS", "") != "1")
    database_url: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL") or None)
    db_pool_size: int = field(default_factory=lambda: _int_env("ESIMOTA_DB_POOL", 10))
    # a proxy header trusted for the caller's address (e.g. X-Forwarded-For), off by default
    trusted_proxy_header: str | None = field(
        default_factory=lambda: os.environ.get("ESIMOTA_TRUSTED_PROXY_HEADER") or None)
    # the operations listener (DESIGN §6): AdminService and IngestService over gRPC on admin_port,
    # /metrics over HTTPS on admin_http_port, both on admin_host (loopback unless configured)
    admin_host: str = field(default_factory=lambda: os.environ.get("ESIMOTA_ADMIN_HOST", "127.0.0.1"))
    admin_port: int = field(default_factory=lambda: _int_env("ESIMOTA_ADMIN_PORT", 9443))
    admin_http_port: int = field(default_factory=lambda: _int_env("ESIMOTA_ADMIN_HTTP_PORT", 9444))
    # peers whose proxy header is believed (CIDR list, empty by default: the header is ignored)
    trusted_proxies: tuple = field(default_factory=lambda: cidr_list("ESIMOTA_TRUSTED_PROXIES"))
    # callback targets inside private/loopback/link-local ranges that may still be called (CIDR list)
    callback_allow: tuple = field(default_factory=lambda: cidr_list("ESIMOTA_CALLBACK_ALLOW"))
    # WatchWriteStatus streams one client may hold open over every worker and node, and how long one lives
    watch_streams_per_client: int = field(default_factory=lambda: _int_env("ESIMOTA_WATCH_STREAMS", 100))
    watch_lifetime_s: float = field(default_factory=lambda: float(_int_env("ESIMOTA_WATCH_LIFETIME", 3600)))
    # seconds a stream's place outlives its worker (renewed every third of it): a killed worker's places free
    watch_place_ttl_s: float = field(default_factory=lambda: float(_positive_env("ESIMOTA_WATCH_PLACE_TTL", 30)))
    # BIP frames failing before a MAC verifies, per source address and second (token bucket)
    bip_refusals_per_s: float = field(default_factory=lambda: float(_int_env("ESIMOTA_BIP_REFUSALS_PER_S", 20)))
    # seconds a connection may take to send a whole request head (slow-loris clients are cut)
    http_head_timeout: float = field(default_factory=lambda: float(_int_env("ESIMOTA_HTTP_HEAD_TIMEOUT", 10)))
    # hours between scheduled backups (R26) taken by worker 0; 0 = no scheduled backups
    backup_interval_h: float = field(default_factory=lambda: _hours_env("ESIMOTA_BACKUP_INTERVAL"))
    # scheduled regulator exports (R34, monthly); ESIMOTA_EXPORT_SCHEDULE=off turns them off
    exports_on: bool = field(default_factory=lambda: os.environ.get("ESIMOTA_EXPORT_SCHEDULE", "on") != "off")
    node_id: str = field(default_factory=node_id)
    shutdown_grace: float = 8.0
