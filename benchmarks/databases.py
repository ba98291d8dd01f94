"""Real PostgreSQL and MariaDB servers for the tests (one of each per session) and the lab.

Each server gets a private folder ``/var/tmp/altws-pg-XXXX`` / ``/var/tmp/altws-mariadb-XXXX``
(its data, socket, pid and log files), listens on 127.0.0.1 on a free port, and runs as its
own system user (``postgres`` / ``mysql``: both refuse to run as root). It has a user ``altws``
with a random password and a database ``altws``; :meth:`Server.fresh_database` makes an empty
database ``t_<random>`` per test and drops it afterwards.

Nothing outlives the test run: :meth:`Server.stop` stops the server and removes the folder; a
watchdog process (this file run as a script) does the same the moment the test process dies,
even by SIGKILL; and every start first removes the folders, and kills the servers, of test runs
whose process is gone (each folder names its owner's pid and start time in ``owner``).

The product connects with ``postgresql://altws:PW@127.0.0.1:PORT/DB`` and
``mysql://altws:PW@127.0.0.1:PORT/DB``; :func:`connect` opens such a URL (and
``sqlite:///PATH``) with the tests' drivers: psycopg 3, PyMySQL, sqlite3.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

TMP = "/var/tmp"
USER = "altws"
# One bound for every wait here; longer under CI, like tests/support.py's TIMEOUT.
START_TIMEOUT = 60.0 if os.environ.get("CI") else 30.0
ROOT = os.geteuid() == 0


# ---------------------------------------------------------------- processes and folders

def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None if there is no such process:
    with the pid it names one process, even after pids are reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "owner")) as f:
            pid, start = f.read().split()
    except (OSError, ValueError):
        # No owner yet: a run that is creating the folder this very moment, or a broken one.
        return time.time() - os.path.getmtime(folder) < 60 if os.path.exists(folder) else False
    return _start_time(int(pid)) == start


def _pids_using(folder: str) -> list[int]:
    """Processes whose command line names the folder (the servers, a watchdog): not this one."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            name = folder.encode()
            if any(arg.endswith(name) or name + b"/" in arg for arg in argv):
                pids.append(int(entry))
    return pids


def remove_folder(folder: str) -> None:
    """Kill every process still using a server folder, then remove it."""
    # SIGKILL: what is left is garbage (the data goes too), and a smart shutdown could wait.
    for pid in _pids_using(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pids_using(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale(prefix: str) -> list[str]:
    """Remove the folders (and kill the servers) of earlier runs whose test process is gone."""
    removed = []
    for folder in glob.glob(os.path.join(TMP, prefix + "*")):
        if os.path.isdir(folder) and not _owner_alive(folder):
            remove_folder(folder)
            removed.append(folder)
    return removed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], cwd: str, timeout: float = START_TIMEOUT + 10) -> None:
    result = subprocess.run(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=timeout, env=_env())
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({result.returncode}):\n{result.stdout}")


def _env() -> dict[str, str]:
    # The developer's PG*/MYSQL* settings must not steer our servers or clients.
    return {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MYSQL"))}


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- servers

class Server:
    """A database server of the test session. Subclasses: :class:`PostgreSQL`, :class:`MariaDB`."""

    prefix = ""        # folder name prefix under TMP
    system_user = ""   # the server's own user, when we are root
    scheme = ""        # the product's URL scheme

    def __init__(self) -> None:
        self.folder = ""
        self.port = 0
        self.password = secrets.token_hex(12)
        self.startup_seconds = 0.0
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- life cycle

    def start(self) -> Server:
        began = time.monotonic()
        remove_stale(self.prefix)
        errors = []
        # Another process may take the free port before the server binds it: then, and only
        # while the first START_TIMEOUT seconds last, once more on another port.
        for _attempt in range(3):
            self._make_folder()
            self.port = _free_port()
            try:
                self._start()
                self._wait_ready(time.monotonic() + START_TIMEOUT)
                break
            except Exception as exc:  # noqa: BLE001 - reported below with the server's log
                errors.append(f"{type(exc).__name__}: {exc}\n--- log:\n{_tail(self.log)}")
                self.stop()
                if time.monotonic() - began > START_TIMEOUT:
                    raise RuntimeError(f"{type(self).__name__} did not start:\n"
                                       + "\n".join(errors)) from None
        else:
            raise RuntimeError(f"{type(self).__name__} did not start:\n" + "\n".join(errors))
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        if not self.folder:
            return
        with contextlib.suppress(Exception):
            self._stop()
        if self._watchdog is not None:
            # Closing its stdin is the watchdog's signal: it removes the folder and exits.
            with contextlib.suppress(Exception):
                self._watchdog.stdin.close()  # type: ignore[union-attr]
                self._watchdog.wait(timeout=START_TIMEOUT)
            self._watchdog = None
        remove_folder(self.folder)
        self.folder = ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _make_folder(self) -> None:
        self.folder = tempfile.mkdtemp(prefix=self.prefix, dir=TMP)
        with open(os.path.join(self.folder, "owner"), "w") as f:
            f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
        if ROOT:
            shutil.chown(self.folder, self.system_user, self.system_user)
        os.chmod(self.folder, 0o700)
        self._watchdog = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--watch", self.folder],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, cwd=TMP,
        )

    def _as_owner(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.system_user, "--", *args] if ROOT else args

    def _wait_ready(self, deadline: float) -> None:
        last: Exception = TimeoutError()
        while True:
            if not self._running():   # first: whoever holds the port then is not our server
                raise RuntimeError(f"the server exited: {last}")
            try:
                self.admin(timeout=2).close()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {START_TIMEOUT:.0f} s: {last}")
            time.sleep(0.05)

    # -- databases

    def url(self, database: str = USER) -> str:
        return f"{self.scheme}://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        """An empty database ``t_<random>`` of its own, yielded as a URL and dropped after."""
        name = "t_" + secrets.token_hex(6)
        self.create_database(name)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def databases(self) -> list[str]:
        raise NotImplementedError

    def create_database(self, name: str) -> None:
        raise NotImplementedError

    def drop_database(self, name: str) -> None:
        raise NotImplementedError

    def admin(self, timeout: float = START_TIMEOUT) -> Any:
        """A driver connection (autocommit) that may create and drop databases."""
        raise NotImplementedError

    # -- per server

    log = ""

    def _start(self) -> None:
        raise NotImplementedError

    def _running(self) -> bool:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError


def missing(engine: str) -> str | None:
    """What this machine lacks to run ``engine`` (``"postgresql"`` or ``"mariadb"``), or
    ``None``: the Debian packages tests/run.sh installs, and the driver of the extra
    (``pip install -e '.[postgresql]'`` / ``'.[mysql]'``; the test extra has both)."""
    import importlib.util

    if engine == "postgresql":
        absent = [] if glob.glob("/usr/lib/postgresql/*/bin/initdb") else ["postgresql"]
        driver = "psycopg"
    else:
        tools = [shutil.which("mariadbd") or "/usr/sbin/mariadbd",
                 shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"]
        absent = [tool for tool in tools if not os.access(tool, os.X_OK)]
        driver = "pymysql"
    if importlib.util.find_spec(driver) is None:
        absent.append(f"the Python driver {driver}")
    return ", ".join(absent) or None


def postgresql_bin() -> str:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/VERSION/bin)."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(d + "/initdb")]
    if not found:
        raise RuntimeError("PostgreSQL is not installed: tests/run.sh installs it (postgresql)")
    return max(found, key=lambda d: [int(p) if p.isdigit() else 0
                                     for p in d.split("/")[-2].split(".")])


class PostgreSQL(Server):
    """``initdb`` + ``pg_ctl start`` as ``postgres``; the superuser ``postgres`` is trusted
    on the folder's Unix socket only, ``altws`` (CREATEDB, password) comes in over TCP."""

    prefix = "altws-pg-"
    system_user = "postgres"
    scheme = "postgresql"

    def _start(self) -> None:
        bindir = postgresql_bin()
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "server.log")
        locale = "C.UTF-8" if os.path.isdir("/usr/lib/locale/C.utf8") else "C"
        _run(self._as_owner([
            f"{bindir}/initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
            f"--locale={locale}", "--auth-local=trust", "--auth-host=scram-sha-256",
            "--no-sync", "--no-instructions",
        ]), cwd=self.folder)
        options = (f"-p {self.port} -k {shlex.quote(self.folder)} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                   " -c max_connections=200")
        _run(self._as_owner([
            f"{bindir}/pg_ctl", "-D", self.data, "-l", self.log, "-o", options,
            "-w", "-t", str(int(START_TIMEOUT)), "-s", "start",
        ]), cwd=self.folder)
        with self._superuser() as conn:
            conn.execute(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{self.password}'")
            conn.execute(f"CREATE DATABASE {USER} OWNER {USER}")

    def _running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def _stop(self) -> None:
        _run(self._as_owner([f"{postgresql_bin()}/pg_ctl", "-D", self.data, "-m", "fast",
                             "-w", "-t", "20", "-s", "stop"]), cwd=self.folder, timeout=30)

    def _superuser(self) -> Any:
        import psycopg
        return psycopg.connect(host=self.folder, port=self.port, user="postgres",
                               dbname="postgres", autocommit=True, connect_timeout=5)

    def admin(self, timeout: float = START_TIMEOUT) -> Any:
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.port, user=USER,
                               password=self.password, dbname=USER, autocommit=True,
                               connect_timeout=5)

    def databases(self) -> list[str]:
        with self._superuser() as conn:
            return [r[0] for r in conn.execute("SELECT datname FROM pg_database")]

    def create_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {USER}')

    def drop_database(self, name: str) -> None:
        # FORCE: connections the product left open would otherwise block the drop.
        with self._superuser() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MariaDB(Server):
    """``mariadb-install-db`` + ``mariadbd --user=mysql`` (our child process); ``altws`` (all
    privileges, password) is made by the server's ``--init-file`` at start."""

    prefix = "altws-mariadb-"
    system_user = "mysql"
    scheme = "mysql"

    def __init__(self) -> None:
        super().__init__()
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        install_db = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
        for tool in (mariadbd, install_db):
            if not os.access(tool, os.X_OK):
                raise RuntimeError(f"{tool} is missing: tests/run.sh installs it (mariadb-server)")
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "error.log")
        user = [f"--user={self.system_user}"] if ROOT else []
        # A 16 MB redo log instead of 100 MB: less to write at install, and the same at start.
        innodb = ["--innodb-log-file-size=16M", "--innodb-buffer-pool-size=64M"]
        _run([install_db, "--no-defaults", *user, f"--datadir={self.data}",
              "--auth-root-authentication-method=socket", "--skip-test-db",
              "--skip-name-resolve", *innodb], cwd=self.folder)
        init = os.path.join(self.folder, "init.sql")
        with open(init, "w") as f:
            f.write(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{self.password}';\n"
                    f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;\n"
                    f"CREATE DATABASE {USER};\n")
        if ROOT:
            shutil.chown(init, self.system_user, self.system_user)
        self.proc = subprocess.Popen(
            [mariadbd, "--no-defaults", *user, f"--datadir={self.data}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.folder}/mysqld.sock", f"--pid-file={self.folder}/mysqld.pid",
             f"--log-error={self.log}", f"--init-file={init}", "--skip-name-resolve",
             "--character-set-server=utf8mb4", "--max-connections=200",
             *innodb, "--innodb-flush-log-at-trx-commit=0",
             "--skip-innodb-doublewrite", "--skip-log-bin"],
            cwd=self.folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, env=_env(),
        )

    def _running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()   # SIGTERM: a clean shutdown, a second or so
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def admin(self, timeout: float = START_TIMEOUT) -> Any:
        import pymysql  # type: ignore[import-untyped]
        # read_timeout: PyMySQL's connect_timeout does not cover waiting for the greeting.
        return pymysql.connect(host="127.0.0.1", port=self.port, user=USER,
                               password=self.password, database=USER, autocommit=True,
                               connect_timeout=5, read_timeout=timeout,
                               write_timeout=timeout)

    def databases(self) -> list[str]:
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return [r[0] for r in cur.fetchall()]

    def create_database(self, name: str) -> None:
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")

    def drop_database(self, name: str) -> None:
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            # Connections the product left open in it would hold locks that block the drop.
            cur.execute("SET SESSION lock_wait_timeout = 20")
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST"
                        " WHERE DB = %s AND ID <> CONNECTION_ID()", (name,))
            for (conn_id,) in cur.fetchall():
                with contextlib.suppress(Exception):
                    cur.execute(f"KILL {int(conn_id)}")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


# ---------------------------------------------------------------- SQLite and drivers

@contextlib.contextmanager
def fresh_sqlite(folder: str) -> Iterator[str]:
    """``sqlite:///FOLDER/altws.db``, a file not yet there; removed (with -wal, -shm) after."""
    path = os.path.join(str(folder), "altws.db")
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)


def connect(url: str, **options: Any) -> Any:
    """A DB-API connection for a test URL: ``sqlite:///PATH`` (sqlite3),
    ``postgresql[+driver]://...`` (psycopg 3), ``mysql[+driver]://...`` (PyMySQL)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        import sqlite3
        return sqlite3.connect(unquote(parts.path[1:]), **options)
    if scheme in ("postgresql", "postgres"):
        import psycopg
        return psycopg.connect(host=parts.hostname, port=parts.port or 5432,
                               user=unquote(parts.username or ""),
                               password=unquote(parts.password or ""),
                               dbname=unquote(parts.path[1:]), connect_timeout=5, **options)
    if scheme in ("mysql", "mariadb"):
        import pymysql
        return pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                               user=unquote(parts.username or ""),
                               password=unquote(parts.password or ""),
                               database=unquote(parts.path[1:]), connect_timeout=5, **options)
    raise ValueError(f"no driver for {url!r}")


def engine(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``mariadb``: the engine a test URL points at."""
    scheme = urlsplit(url).scheme.split("+")[0]
    return {"postgres": "postgresql", "mysql": "mariadb"}.get(scheme, scheme)


# ---------------------------------------------------------------- the watchdog

def _watch(folder: str) -> None:
    """Wait for the test process to close our stdin (at stop, or by dying), then make sure
    no server of that folder is left and the folder is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a Ctrl-C to the tests is not for us
    with contextlib.suppress(Exception):
        while sys.stdin.buffer.read(4096):
            pass
    remove_folder(folder)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--watch":
        _watch(sys.argv[2])
    else:
        # By hand: python benchmarks/databases.py  -> start both, print their URLs, stop on Enter.
        with PostgreSQL() as pg, MariaDB() as my:
            for server in (pg, my):
                print(f"{server.url()}  ({server.startup_seconds:.1f} s, {server.folder})")
            with contextlib.suppress(EOFError, KeyboardInterrupt):
                input("Enter stops them. ")
