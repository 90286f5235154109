"""A private PostgreSQL server in a directory of ours, on 127.0.0.1 and a free port.

Used by the demo (when no DATABASE_URL is given) and by the integration tests. It uses the
machine's own PostgreSQL server binaries (Debian's ``postgresql`` package); PostgreSQL
refuses to run as root, so under root the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from stream_mlops.errors import MlopsError


class EmbeddedPostgresError(MlopsError):
    pass


def find_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    def major(p: str) -> int:
        name = Path(p).parent.name
        return int(name) if name.isdigit() else 0

    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    candidates += [Path(v) for v in versions]
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found (initdb, pg_ctl): install them with "
        "`apt-get install postgresql` or set DATABASE_URL to an existing database"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """``initdb`` on first use, then ``pg_ctl start``/``stop``; data survives restarts."""

    def __init__(self, datadir: Path, *, port: int | None = None, fast_unsafe: bool = False):
        self.datadir = Path(datadir).resolve()
        self.port = port or free_port()
        self.bindir = find_bindir()
        self.fast_unsafe = fast_unsafe  # fsync off: for tests and benchmarks only
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")
        if check and out.returncode != 0:
            lines = (out.stderr.strip() or out.stdout.strip()).splitlines()
            raise EmbeddedPostgresError(
                f"{args[0]} failed (exit {out.returncode}): {lines[-1] if lines else ''}")
        return out

    def _own(self, path: Path) -> None:
        if self._as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def init(self) -> None:
        if (self.datadir / "PG_VERSION").exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.datadir.chmod(0o700)
        self._own(self.datadir)
        parent = self.datadir.parent
        if self._as_postgres and not parent.stat().st_mode & 0o001:
            parent.chmod(parent.stat().st_mode | 0o011)  # let postgres traverse to its dir
        if self._as_postgres:
            reach = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w",
                                    str(self.datadir)], check=False)
            if reach.returncode != 0:
                raise EmbeddedPostgresError(
                    f"the postgres system user cannot write {self.datadir} (PostgreSQL refuses "
                    "to run as root): pick a data directory outside private folders")
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        self.init()
        opts = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.datadir}",
            "-c max_connections=200",
        ]
        if self.fast_unsafe:
            # Safe against a server crash (not an OS crash): what commits stays committed.
            opts += ["-c fsync=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.datadir / "server.log"),
                  "-o", " ".join(opts), "-w", "-t", str(int(timeout)), "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if out.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedPostgresError(f"PostgreSQL on port {self.port} not ready in {timeout} s")
