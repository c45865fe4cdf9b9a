"""A real PostgreSQL server from Debian's package, in a temporary folder on a free loopback port.

initdb and postgres refuse to run as root; the suite runs as root in CI, so there they run as
the `postgres` system user that the Debian package creates, in a folder it owns (outside
pytest's root-only temporary folders). Debian's own cluster on port 5432, if any, is never used.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from edge.ports import free_port

__all__ = ["PostgresServer", "postgres_bin"]


def postgres_bin() -> Path | None:
    """The newest installed /usr/lib/postgresql/<version>/bin holding initdb, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """One postgres process (user `reman`, trust auth on 127.0.0.1) and its databases."""

    user = "reman"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="reman-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres will not run as root
            shutil.chown(self.folder, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 30.0) -> PostgresServer:
        """initdb, start postgres, and return once it accepts connections."""
        subprocess.run(
            [*self._as, str(self.bindir / "initdb"), "-D", str(self.data), "--auth=trust",
             "-U", self.user, "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True,
        )  # fmt: skip
        log = open(self.folder / "postgres.log", "wb")  # noqa: SIM115 (kept open for the process)
        self.proc = subprocess.Popen(
            [*self._as, str(self.bindir / "postgres"), "-D", str(self.data),
             "-k", str(self.folder), "-h", "127.0.0.1", "-p", str(self.port),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{self.log()}") from None
                time.sleep(0.05)  # polling a server that is coming up

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (empty, or a copy of `template`); its URL."""
        like = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{like}'.encode())
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any connection still open to it."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def stop(self) -> None:
        """Stop the server (a fast shutdown) and remove its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.folder, ignore_errors=True)
