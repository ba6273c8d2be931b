"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary directory.

One cluster per test session (per xdist worker), on a free loopback port and a unix socket in
its directory; each test takes a fresh database, copied from a template the bridge's schema was
put into once. `initdb` refuses to run as root, so as root every server command runs as the
`postgres` user (`runuser`), in a directory that user owns. Without PostgreSQL's binaries (or,
as root, without a `postgres` user) `find_binaries` says why and the tests skip.

Connections from loopback need the password (scram), so a URL carries a real credential, as a
deployment's would; the unix socket trusts its owner (used to create databases).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import psycopg

from tests.harness import free_port

PASSWORD = "pg-s3cret-Passw0rd"  # the cluster's superuser password (what must never be logged)
TEMPLATE = "bridge_template"


def find_binaries() -> tuple[Path | None, str]:
    """The directory of initdb and pg_ctl, or None and why not."""
    for candidate in [
        shutil.which("pg_ctl"),
        *sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
    ]:
        if candidate and os.access(candidate, os.X_OK):
            bindir = Path(candidate).resolve().parent
            if (bindir / "initdb").exists() and (bindir / "postgres").exists():
                break
    else:
        return None, "no PostgreSQL server binaries (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and no 'postgres' user to run initdb as"
        if shutil.which("runuser") is None:
            return None, "running as root and no runuser to run initdb as 'postgres'"
    return bindir, ""


class Cluster:
    """A PostgreSQL cluster of its own (see the module docstring); `stop`/`start` restart it on
    the same port, as a database restart would look to the bridge."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self._count = 0
        self._lock = threading.Lock()
        if self._as_root:
            os.chown(self.dir, pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD)
        if self._as_root:
            shutil.chown(pwfile, "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        self.start()
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -F"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the unix socket (trusted), autocommit."""
        return psycopg.connect(
            host=str(self.dir), port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def url(self, dbname: str) -> str:
        """The URL a bridge is given: TCP on loopback, with the password."""
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def template_ready(self, prepare: object) -> None:
        """Run `prepare(url)` on the template database once (the schema migrated into it)."""
        with self._lock:
            if getattr(self, "_prepared", False):
                return
            prepare(self.url(TEMPLATE))  # type: ignore[operator]
            self._prepared = True

    def new_database(self) -> str:
        """A fresh database (a copy of the template); its name."""
        with self._lock:
            self._count += 1
            name = f"t{self._count}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def empty_database(self, name: str) -> str:
        """A database without any table (not the template's copy: what an older bridge, or
        none, left), made anew (one a failed run left is dropped first); its URL."""
        self.drop_database(name)
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(psycopg.Error), self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
