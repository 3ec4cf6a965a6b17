"""A throwaway PostgreSQL cluster for tests, from Debian's PostgreSQL 15 binaries.

Usage (a session fixture in tests/todo/conftest.py does this once per run)::

    require_postgres()                       # skip, or fail in CI, without binaries
    with postgres_cluster() as cluster:
        url = cluster.create_database()      # a fresh, empty database
        app = create_app({"SQLALCHEMY_DATABASE_URI": url})

The cluster lives in a temporary directory (data, unix socket and log), listens
on a free port on 127.0.0.1 only, trusts local connections, and skips fsync
(its data is thrown away). PostgreSQL refuses to run as root, so as root the
binaries run as the ``postgres`` user (``setpriv``), in a directory it owns.

Tests that should run on both databases take the ``db_url`` fixture and the
:data:`on_all_databases` mark.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import STARTUP_TIMEOUT_S, eventually, free_port, running

#: Where Debian installs the PostgreSQL 15 server binaries.
PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: The OS user the server runs as when the tests run as root.
PG_OS_USER = "postgres"
#: The database superuser created by initdb (trusted on loopback, no password).
PG_SUPERUSER = "postgres"

#: Settings for a disposable cluster: durability is pointless here and costs
#: seconds per test run; connections only from loopback and the socket dir.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Each test app holds a small pool; well above what one test run needs.
    "max_connections": "100",
}

#: Run the app's tests on SQLite and on PostgreSQL; the test takes ``db_url``.
on_all_databases = pytest.mark.parametrize(
    "db_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)


def postgres_available() -> bool:
    """Tell whether the PostgreSQL server binaries are installed."""
    return all((PG_BIN / name).exists() for name in ("initdb", "postgres"))


def require_postgres() -> None:
    """Skip the test without PostgreSQL; fail it in CI, where it must be present."""
    if postgres_available():
        return
    message = f"PostgreSQL 15 is not installed in {PG_BIN} (apt-get install postgresql-15)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class PostgresCluster:
    """A running throwaway cluster (see :func:`postgres_cluster`)."""

    def __init__(self, *, port: int, socket_dir: Path) -> None:
        self.port = port
        self.socket_dir = socket_dir
        self._names = itertools.count(1)

    def url(self, dbname: str = "postgres") -> str:
        """Return the SQLAlchemy URL (psycopg 3 driver) of database ``dbname``."""
        return f"postgresql+psycopg://{PG_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """Return the libpq connection string of database ``dbname``."""
        return f"host=127.0.0.1 port={self.port} user={PG_SUPERUSER} dbname={dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (default: a fresh name) and return its URL."""
        import psycopg

        name = name or f"todo_test_{next(self._names)}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, never user input
        return self.url(name)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """Initialise and start a cluster; stop it and delete its files afterwards."""
    root = Path(tempfile.mkdtemp(prefix="todo-pg-"))
    try:
        as_user = _as_postgres_user(root)
        data = root / "data"
        subprocess.run(
            [*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_SUPERUSER,
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            cwd=root, check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        settings = {**SERVER_SETTINGS, "port": str(port), "unix_socket_directories": str(root)}
        args = [*as_user, str(PG_BIN / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log = root / "postgres.log"
        with running(args, cwd=root, stdout_path=log) as proc:
            cluster = PostgresCluster(port=port, socket_dir=root)
            try:
                eventually(
                    lambda: proc.poll() is not None or _accepts(cluster),
                    timeout=STARTUP_TIMEOUT_S,
                )
            except AssertionError:
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()}") from None
            if proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {proc.returncode}:\n{log.read_text()}")
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _accepts(cluster: PostgresCluster) -> bool:
    import psycopg

    try:
        with psycopg.connect(cluster.conninfo(), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _as_postgres_user(root: Path) -> list[str]:
    """Return the command prefix that runs a binary as the server's OS user.

    As root that is ``setpriv`` to the ``postgres`` user, who then owns ``root``;
    as anyone else, nothing (the server runs as the current user).
    """
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        pytest.fail(f"running as root, but there is no {PG_OS_USER!r} user to run PostgreSQL as")
    os.chown(root, user.pw_uid, user.pw_gid)
    root.chmod(0o700)
    return [
        "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--",
    ]  # fmt: skip
