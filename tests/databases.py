"""Databases for the tests: a SQLite file, or a real PostgreSQL server the tests start themselves.

``postgres_server`` (module scope) runs ``initdb`` and ``pg_ctl`` in a temporary directory on a free
port (as the postgres user when the tests run as root, since PostgreSQL refuses root) and stops it
afterwards; ``db_url`` gives each test a fresh database of each backend. Without server binaries the
PostgreSQL cases skip, or fail when ``EVDC_REQUIRE_POSTGRES=1`` (CI installs the server and sets it).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

REQUIRE_POSTGRES = "EVDC_REQUIRE_POSTGRES"
PG_USER = "postgres"
PG_DATABASE = "evdc"
PG_START_TIMEOUT_S = 60
BACKENDS = ("sqlite", "postgresql")
RUNUSER_PLACES = ("/usr/sbin/runuser", "/sbin/runuser")


def postgres_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: pg_ctl's on PATH, else the newest /usr/lib/postgresql/*/bin."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates += [Path(on_path).parent, Path(on_path).resolve().parent]
    installed = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(d) for d in installed), key=lambda d: _major_version(d.parent.name), reverse=True)
    return next((d for d in candidates if (d / "pg_ctl").is_file() and (d / "initdb").is_file()), None)


def _major_version(name: str) -> float:
    try:
        return float(name)
    except ValueError:
        return 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_server_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the postgres user then (with util-linux's runuser)."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser") or next((p for p in RUNUSER_PLACES if Path(p).is_file()), "runuser")
    return [runuser, "-u", PG_USER, "--", *argv]


@pytest.fixture(scope="module")
def postgres_server():
    """A PostgreSQL server of its own (temp data dir, free port, socket in the temp dir); yields its admin URL."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries (pg_ctl, initdb) not found on PATH or in /usr/lib/postgresql/*/bin"
        if os.environ.get(REQUIRE_POSTGRES) == "1":
            pytest.fail(f"{message}, and {REQUIRE_POSTGRES}=1", pytrace=False)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="evdc-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER)
    port = free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": PG_START_TIMEOUT_S}
    try:
        subprocess.run(as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust",
                                       "--encoding=UTF8", "--locale=C", "--no-sync"]), **run)
        options = f"-p {port} -k {root} -c listen_addresses='' -c fsync=off"
        subprocess.run(as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                                       "-t", str(PG_START_TIMEOUT_S), "-o", options, "start"]), **run)
    except (OSError, subprocess.SubprocessError) as exc:
        output = getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or str(exc)
        detail = (output.strip().splitlines() or [""])[-1]
        server_log = log.read_text()[-500:] if log.exists() else ""
        subprocess.run(as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=PG_START_TIMEOUT_S)
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL in {bin_dir} did not start: {detail} {server_log}", pytrace=False)
    try:
        yield sa.URL.create("postgresql+psycopg", username=PG_USER, database="postgres",
                            query={"host": str(root), "port": str(port)})
    finally:
        subprocess.run(as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=PG_START_TIMEOUT_S)
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count(1)


def new_database(admin_url: sa.URL) -> str:
    """A new, empty database on the server of ``admin_url``; its URL."""
    name = f"{PG_DATABASE}_{next(_database_numbers)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # name from a counter, not from data
    admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file given as a bare path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "plans.db")
    return new_database(request.getfixturevalue("postgres_server"))
