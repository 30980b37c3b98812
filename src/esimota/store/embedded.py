"""The project-local PostgreSQL cluster under ESIMOTA_HOME, from the machine's PostgreSQL binaries (DESIGN §7)."""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

PG_USER = "esimota"  # the database role; the OS user is _os_user()
PG_DB = "esimota"
_INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) not found: install them with "
                 "`apt-get install -y postgresql` (Debian package postgresql) or put them on PATH")


def find_bindir() -> Path:
    """initdb and pg_ctl: ESIMOTA_PG_BINDIR, on PATH, via pg_config --bindir, or /usr/lib/postgresql/*/bin."""
    override = os.environ.get("ESIMOTA_PG_BINDIR")
    if override:
        if all((Path(override) / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(override)
        raise ConfigError(_INSTALL_HINT + f" (ESIMOTA_PG_BINDIR={override} lacks them)")
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                      reverse=True)
    candidates += [Path(p) for p in versions]
    for cand in candidates:
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists() and (cand / "postgres").exists():
            return cand
    raise ConfigError(_INSTALL_HINT)


def _major_of(tool: Path) -> int | None:
    """The major version a PostgreSQL program reports (`pg_dump (PostgreSQL) 15.18` -> 15), or None."""
    try:
        out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\)\s+(\d+)", out)
    return int(m.group(1)) if m else None


def find_client_tool(name: str, major: int) -> Path:
    """pg_dump or pg_restore of the server's major version, looked for like initdb: ESIMOTA_PG_BINDIR,
    /usr/lib/postgresql/MAJOR/bin, pg_config --bindir, PATH. A dump taken by another major version is
    refused by an older pg_restore and may miss objects of a newer server, so the version must match."""
    candidates = [Path(os.environ["ESIMOTA_PG_BINDIR"])] if os.environ.get("ESIMOTA_PG_BINDIR") else []
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    for cand in candidates:
        tool = cand / name
        if tool.exists() and _major_of(tool) == major:
            return tool
    raise ConfigError(f"{name} of PostgreSQL {major} (the server's version) not found: install it with "
                      f"`apt-get install -y postgresql-client-{major}` (Debian package postgresql-client-{major})")


def _os_user() -> pwd.struct_passwd | None:
    """The unprivileged system user the cluster runs as when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "esimota"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "esimota"],
                   check=True, capture_output=True)
    return pwd.getpwnam("esimota")


def _make_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Give the cluster's user search (x) permission on the ancestors of its data directory."""
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        os.chmod(parent, st.st_mode | stat.S_IXOTH)


def _alive(pid: int) -> bool:
    try:
        os.kill(abs(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by the cluster's user
        return True
    return True


def _free_port(preferred: int = 0) -> int:
    """`preferred` when it can be bound on 127.0.0.1, else a port the kernel picks."""
    for port in ((preferred, 0) if preferred else (0,)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the postmaster binds: TIME_WAIT is no clash
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ConfigError("no free TCP port on 127.0.0.1 for the embedded PostgreSQL")


@dataclass
class Cluster:
    """One embedded cluster: HOME/pg (data), HOME/pg.port, HOME/pg.password (0600), HOME/pg.log."""

    home: Path

    @property
    def datadir(self) -> Path:
        return self.home / "pg"

    @property
    def logfile(self) -> Path:
        return self.home / "pg.log"

    def _run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        user = _os_user()
        if user is not None:
            kw.setdefault("user", user.pw_uid)
            kw.setdefault("group", user.pw_gid)
            kw.setdefault("extra_groups", [])
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", "/")
        return subprocess.run(argv, **kw)

    def password(self) -> str:
        return (self.home / "pg.password").read_text().strip()

    def port(self) -> int:
        return int((self.home / "pg.port").read_text().strip())

    def url(self, dbname: str = PG_DB) -> str:
        return f"postgresql://{PG_USER}:{self.password()}@127.0.0.1:{self.port()}/{dbname}"

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        bindir = find_bindir()
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        user = _os_user()
        pwfile = self.home / "pg.password"
        if not pwfile.exists():
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        tmp_pw = self.home / "pg.pwinit"
        tmp_pw.write_text(self.password() + "\n")
        if user is not None:
            _make_reachable(self.datadir, user)
            os.chown(self.datadir, user.pw_uid, user.pw_gid)
            os.chown(tmp_pw, user.pw_uid, user.pw_gid)
            os.chmod(self.home, 0o711)
        os.chmod(tmp_pw, 0o600)
        try:
            res = self._run([str(bindir / "initdb"), "-D", str(self.datadir), "-U", PG_USER,
                             "--pwfile", str(tmp_pw), "--auth=scram-sha-256", "-E", "UTF8",
                             "--locale=C.UTF-8", "--no-sync"])
        finally:
            tmp_pw.unlink(missing_ok=True)
        if res.returncode != 0:
            raise ConfigError(f"initdb failed: {res.stderr.strip() or res.stdout.strip()}")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# esimota embedded cluster\nlisten_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\nmax_connections = 300\n"
                       "shared_buffers = 256MB\nsynchronous_commit = on\nfsync = on\n"
                       "log_min_messages = warning\n")

    def running(self) -> bool:
        if not self.initialised():
            return False
        res = self._run([str(find_bindir() / "pg_ctl"), "status", "-D", str(self.datadir)])
        return res.returncode == 0

    def start(self) -> str:
        """Start the cluster unless it runs already; returns the connection URL."""
        if not self.initialised():
            self.init()
        if self.running():
            self._ensure_database(self.port())
            return self.url()
        # the port of the last start when it is still free: a `serve` whose cluster was stopped and
        # started again (`esimota db stop` / `db start`) finds it where its pool connects
        port = _free_port(self._last_port())
        (self.home / "pg.port").write_text(f"{port}\n")
        user = _os_user()
        if not self.logfile.exists():
            self.logfile.touch(mode=0o600)
        if user is not None:
            os.chown(self.logfile, user.pw_uid, user.pw_gid)
        self._log_from = self.logfile.stat().st_size
        # -W: pg_ctl returns once the postmaster is launched; readiness is judged below by what the
        # server itself writes to postmaster.pid (see _wait_ready), not by pg_ctl's own -w poll.
        res = self._run([str(find_bindir() / "pg_ctl"), "start", "-D", str(self.datadir), "-W",
                         "-l", str(self.logfile), "-o", f"-p {port}"])
        if res.returncode != 0:
            raise ConfigError(f"PostgreSQL did not start: {res.stderr.strip()} {self._log_tail()}")
        self._wait_ready(port)
        self._ensure_database(port)
        return self.url()

    def _last_port(self) -> int:
        try:
            return int((self.home / "pg.port").read_text().strip())
        except (OSError, ValueError):
            return 0

    def _log_tail(self) -> str:
        """What the server logged since this start (the file is appended to across starts)."""
        if not self.logfile.exists():
            return ""
        with open(self.logfile, "rb") as f:
            f.seek(getattr(self, "_log_from", 0))
            return f.read().decode(errors="replace")[-2000:].strip()

    def _ensure_database(self, port: int) -> None:
        """Create the platform's database on the first start (initdb makes only `postgres`)."""
        marker = self.home / "pg.dbcreated"
        if marker.exists():
            return
        env = dict(os.environ, PGPASSWORD=self.password(), PGCONNECT_TIMEOUT="10")
        res = subprocess.run([str(find_bindir() / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                              "-U", PG_USER, PG_DB], capture_output=True, text=True, env=env)
        if res.returncode != 0 and "already exists" not in res.stderr:
            raise ConfigError(f"createdb failed: {res.stderr.strip()}")
        marker.touch(mode=0o600)

    def _pid_status(self) -> tuple[int, str] | None:
        """(postmaster pid, status) from postmaster.pid, once the server has written its status line."""
        try:
            lines = (self.datadir / "postmaster.pid").read_text().split("\n")
        except (OSError, UnicodeDecodeError):
            return None
        if len(lines) < 8 or not lines[0].strip().lstrip("-").isdigit():
            return None
        return int(lines[0]), lines[7].strip()

    def _wait_ready(self, port: int, timeout: float = 120.0) -> None:
        """Until the postmaster reports `ready` in postmaster.pid and accepts a TCP connection.

        pg_ctl -w polled the same file but trusted it only once its pid and start time matched what
        pg_ctl recorded itself, and gave up after a fixed count of 100 ms polls (-t): once, on a loaded
        machine, it said "server did not start in time" while the server's log showed it ready after
        50 ms (issue 17; not reproduced here). This wait ends on the server's own state, reports that
        state when it gives up, and stops at once when the postmaster exits."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self._pid_status()
            if seen is not None and seen[1] == "ready":
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2):
                        return
                except OSError:
                    pass
            elif seen is not None and not _alive(seen[0]):
                break
            elif seen is None and "FATAL" in self._log_tail():
                break
            time.sleep(0.05)
        state = f"postmaster.pid says {seen[1]!r}" if seen else "no postmaster.pid"
        raise ConfigError(f"PostgreSQL did not become ready on 127.0.0.1:{port} ({state}): {self._log_tail()}")

    def stop(self, mode: str = "fast") -> bool:
        """Stop the cluster if it runs; True if it was running."""
        if not self.running():
            return False
        res = self._run([str(find_bindir() / "pg_ctl"), "stop", "-D", str(self.datadir),
                         "-m", mode, "-w", "-t", "60"])
        if res.returncode != 0:
            raise ConfigError(f"pg_ctl stop failed: {res.stderr.strip()}")
        return True


def database_url(home: Path) -> str:
    """DATABASE_URL if set, else the embedded cluster's URL (starting it if needed)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return Cluster(home).start()
