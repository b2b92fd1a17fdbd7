"""A throwaway PostgreSQL server for tests: the system's initdb/pg_ctl, a temp dir, 127.0.0.1.

Not a conftest: test modules that want PostgreSQL call ``session_server(request.config)`` from
their own fixture. The first call starts one server for the whole pytest session and registers
its shutdown with pytest, so several modules share it and it always stops at the end.

Set ``SECTORBOT_TEST_POSTGRES_URL`` to a superuser URL to use an existing server instead, and
``SECTORBOT_PG_BINDIR`` to point at a specific ``.../bin`` directory.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) not found: install them with "
                "`apt-get install postgresql` (or run .ci/postgres.sh), set SECTORBOT_PG_BINDIR "
                "to their directory, or set SECTORBOT_TEST_POSTGRES_URL to an existing server")
# Not UTC on purpose: the store must not depend on the session time zone.
TEST_TIMEZONE = "Asia/Kolkata"
_names = itertools.count(1)


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres; the newest Debian version wins."""
    candidates: list[Path] = []
    if os.environ.get("SECTORBOT_PG_BINDIR"):
        candidates.append(Path(os.environ["SECTORBOT_PG_BINDIR"]))
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).resolve().parent)

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", p.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if all((bindir / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


# Runs beside the test process in its own session. When the test process goes away by any means
# (even SIGKILL or a CI timeout), its end of the pipe closes, and the watchdog shuts the server
# down and deletes its directory, so no orphaned postgres outlives a killed test run.
_WATCHDOG = """
import os, shutil, signal, sys, time
sys.stdin.read()
tmp = sys.argv[1]
try:
    with open(os.path.join(tmp, "data", "postmaster.pid")) as f:
        pid = int(f.readline())
    os.kill(pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown
    for _ in range(100):  # until it is gone, or a zombie nobody reaps (containers)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
except (OSError, ValueError, IndexError):
    pass
shutil.rmtree(tmp, ignore_errors=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One server and one test database; ``fresh_url`` gives each test its own schema in it."""

    def __init__(self, bindir: Path | None = None, admin_url: str | None = None) -> None:
        self.bindir = bindir
        self.admin_url = admin_url or ""
        self.tmp: Path | None = None
        self._admin: Engine | None = None
        self._database_url: str | None = None
        self._run_as: dict[str, Any] = {}
        self._watchdog: subprocess.Popen[str] | None = None

    def start(self) -> None:
        if self.bindir is None:  # an existing server: nothing to start
            return
        if os.geteuid() == 0:  # initdb refuses to run as root
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and no 'postgres' user to run initdb as; "
                            + INSTALL_HINT)
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid}
        self.tmp = Path(tempfile.mkdtemp(prefix="sectorbot-pg-"))
        if self._run_as:
            os.chown(self.tmp, self._run_as["user"], self._run_as["group"])
        self._watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(self.tmp)],
                                          stdin=subprocess.PIPE, text=True,
                                          start_new_session=True)
        data = self.tmp / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        last_error = ""
        for _attempt in range(3):  # another process may grab the free port in between
            port = _free_port()
            options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            done = self._run("pg_ctl", "-D", str(data), "-l", str(self.tmp / "server.log"),
                             "-w", "-t", "15", "-o", options, "start", check=False)
            if done.returncode == 0:
                self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
                return
            last_error = self.log_tail()
        raise RuntimeError(f"PostgreSQL did not start:\n{last_error}")

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None
        if self.bindir is None or self.tmp is None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.tmp / "data"), "-m", "immediate", "-w",
                      "-t", "10", "stop", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None
        if self._watchdog is not None:  # nothing left for it to clean: let it exit
            assert self._watchdog.stdin is not None
            self._watchdog.stdin.close()
            self._watchdog.wait(timeout=10)
            self._watchdog = None

    def create_database(self, name: str = "sectorbot_test") -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        with self._admin_engine().connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self._admin_engine().url.set(database=name).render_as_string(hide_password=False)

    def fresh_url(self) -> str:
        """An empty namespace for one test: a new schema in the session's test database.

        A schema costs milliseconds where CREATE DATABASE costs a quarter of a second. The URL
        makes it the connection's search path, so the store and Alembic see only it, and sets
        a non-UTC session time zone.
        """
        if self._database_url is None:
            self._database_url = self.create_database(f"sectorbot_test_{os.getpid()}")
        schema = f"t{next(_names)}"
        engine = create_engine(self._database_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        options = f"-csearch_path={schema} -ctimezone={TEST_TIMEZONE}"
        url = make_url(self._database_url).update_query_dict({"options": options})
        return url.render_as_string(hide_password=False)

    def _admin_engine(self) -> Engine:
        if self._admin is None:
            self._admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT",
                                        poolclass=NullPool)
        return self._admin

    def log_tail(self) -> str:
        log = None if self.tmp is None else self.tmp / "server.log"
        return "" if log is None or not log.exists() else log.read_text()[-2000:]

    def _run(self, exe: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.bindir is not None and self.tmp is not None
        done = subprocess.run([str(self.bindir / exe), *args], cwd=self.tmp, text=True,
                              capture_output=True, timeout=30, **self._run_as)
        if check and done.returncode != 0:
            raise RuntimeError(f"{exe} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done


_SERVER = pytest.StashKey[PostgresServer | BaseException]()


def session_server(config: pytest.Config) -> PostgresServer:
    """The session's server, started on first use; skips the test if PostgreSQL is missing.

    A failed start is remembered, so the remaining tests fail fast with the same error instead
    of each running initdb again.
    """
    if _SERVER in config.stash:
        known = config.stash[_SERVER]
        if isinstance(known, BaseException):
            raise known
        return known
    external = os.environ.get("SECTORBOT_TEST_POSTGRES_URL")
    if external:
        url = make_url(external)
        if "+" not in url.drivername:  # SQLAlchemy would pick psycopg2, which is not installed
            url = url.set(drivername="postgresql+psycopg")
        server = PostgresServer(admin_url=url.render_as_string(hide_password=False))
    else:
        bindir = find_bindir()
        if bindir is None:
            pytest.skip(INSTALL_HINT)
        server = PostgresServer(bindir)
    config.add_cleanup(server.stop)  # registered first: a half-started server is cleaned too
    try:
        server.start()
    except pytest.skip.Exception:
        raise
    except Exception as exc:
        config.stash[_SERVER] = exc
        raise
    config.stash[_SERVER] = server
    return server
