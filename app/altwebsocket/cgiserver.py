"""``altws cgi-server``: try the shared-hosting mode locally, under a real Apache.

It lays out what a user uploads to a host — the web root with ``static/`` and
``cgi-bin/altws.cgi`` + ``altws.ini`` + the shipped ``.htaccess`` files from
``deploy/apache-cgi/`` — in a run folder, builds the CGI's Python from Debian's
``/usr/bin/python3`` (the web server user cannot read root's pyenv), and runs Debian's
``apache2`` in the foreground with a configuration like a shared host's
(``deploy/apache-cgi/local/httpd.conf.in``). Ctrl-C stops Apache and removes the run folder.
It installs no system package: without Apache it says what to install and exits.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable

from .exceptions import ConfigError
from .resources import shipped

__all__ = ["CGIServer", "PassengerServer", "add_parser", "passenger_pids", "run_processes"]

APACHE = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
PASSENGER_MODULE = f"{MODULES}/mod_passenger.so"
# Passenger's own default PassengerMaxPoolSize, what a host that sets nothing gives.
DEFAULT_POOL = 6
SYSTEM_PYTHON = "/usr/bin/python3"
RUN_USER = "www-data"
# What the CGI's Python needs (SQLAlchemy only creates the tables on the first request).
CGI_REQUIREMENTS = ["sqlalchemy>=2.0", "PyMySQL>=1.1", "psycopg[binary]>=3.1"]


def _say(message: str) -> None:
    print(f"altws cgi-server: {message}", flush=True)


def require_passenger() -> None:
    """Refuse to go on without mod_passenger, saying what to install.

    Raises:
        ConfigError: Debian's ``mod_passenger.so`` is missing.
    """
    if os.path.exists(PASSENGER_MODULE):
        return
    raise ConfigError(f"Passenger for Apache is not installed ({PASSENGER_MODULE} is "
                      "missing): install it, e.g. `apt-get install libapache2-mod-passenger` "
                      "on Debian/Ubuntu (as root), then run altws cgi-server --passenger again")


def require_apache() -> None:
    """Refuse to go on without Apache, saying what to install: this command installs nothing.

    Raises:
        ConfigError: ``/usr/sbin/apache2`` is missing.
    """
    if os.path.exists(APACHE):
        return
    raise ConfigError(f"Apache is not installed ({APACHE} is missing): install it, e.g. "
                      "`apt-get install apache2` on Debian/Ubuntu (as root), or your system's "
                      "Apache package, then run altws cgi-server again")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _package_root() -> str:
    """The folder that holds the ``altwebsocket`` package."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cgi_python(cache: str) -> str:
    """A venv made from Debian's python3 with the CGI's requirements; built once, cached."""
    if not os.path.exists(SYSTEM_PYTHON):
        raise ConfigError(f"{SYSTEM_PYTHON} is missing: install Debian's python3 and python3-venv")
    key = hashlib.sha256(" ".join(CGI_REQUIREMENTS).encode()).hexdigest()[:12]
    venv = os.path.join(cache, f"cgi-venv-{key}")
    python = os.path.join(venv, "bin", "python3")
    if os.path.exists(os.path.join(venv, ".complete")):
        return python
    _say(f"building the CGI's Python in {venv} (once) ...")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *CGI_REQUIREMENTS], check=True)
    open(os.path.join(venv, ".complete"), "w").close()
    _make_readable(venv)
    return python


def _make_readable(top: str) -> None:
    for folder, _dirs, files in os.walk(top):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)


def _check_reachable(folder: str) -> None:
    """Refuse a data folder the web server user cannot reach (a parent it cannot enter)."""
    path = os.path.abspath(folder)
    parent = os.path.dirname(path)
    while parent and parent != os.path.dirname(parent):
        mode = os.stat(parent).st_mode
        if not mode & 0o001:
            raise ConfigError(
                f"the data folder {path} is not reachable by {RUN_USER}: its parent {parent} "
                f"is not searchable by others (mode {oct(mode & 0o777)}); choose a folder such "
                f"as /var/tmp/altws-data or /srv/altws-data")
        parent = os.path.dirname(parent)


def _chown_tree(top: str) -> None:
    """Give ``top`` and everything in it to the web server user."""
    entry = pwd.getpwnam(RUN_USER)
    for folder, _, files in os.walk(top):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)


class CGIServer:
    """A run folder laid out like a shared host, and Apache serving it."""

    kind = "cgi"

    def __init__(self, data: str, host: str = "127.0.0.1", port: int = 8080,
                 settings: dict[str, str] | None = None,
                 cache: str = "/var/tmp/altws") -> None:
        self.data = os.path.abspath(data)
        self.host = host
        self.port = port or _free_port(host)
        self.settings = settings or {}
        self.cache = cache
        self.run_dir = ""
        self.proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    @property
    def url(self) -> str:
        """The site's base URL."""
        return f"http://{self.host}:{self.port}"

    def prepare(self) -> None:
        """Lay out the run folder: web root, cgi-bin, settings, Apache configuration."""
        python = self._prepare_run_folder()
        run = self.run_dir
        deploy = shipped("deploy", "apache-cgi/altws.ini")
        htdocs = os.path.join(run, "htdocs")
        cgi_bin = os.path.join(htdocs, "cgi-bin")
        static = shipped("static", "altwebsocket.js")
        shutil.copytree(static, os.path.join(htdocs, "static"))
        os.makedirs(cgi_bin)
        shutil.copy(os.path.join(deploy, "apache-cgi", "docroot.htaccess"),
                    os.path.join(htdocs, ".htaccess"))
        shutil.copy(os.path.join(deploy, "apache-cgi", "cgi-bin.htaccess"),
                    os.path.join(cgi_bin, ".htaccess"))
        script = open(os.path.join(shipped("cgi-bin", "altws.cgi"), "altws.cgi"),
                      encoding="utf-8").read()
        lines = script.split("\n")
        lines[0] = f"#!{python} -S"  # (the script finds the venv's packages itself)
        script = "\n".join(lines).replace(
            '#   sys.path.insert(0, "/home/me/altwebsocket/app")',
            f'sys.path.insert(0, {os.path.join(run, "lib")!r})')
        with open(os.path.join(cgi_bin, "altws.cgi"), "w", encoding="utf-8") as out:
            out.write(script)
        os.chmod(os.path.join(cgi_bin, "altws.cgi"), 0o755)
        self._write_settings(os.path.join(deploy, "apache-cgi", "altws.ini"),
                             os.path.join(cgi_bin, "altws.ini"))
        with open(os.path.join(htdocs, "index.html"), "w", encoding="utf-8") as out:
            out.write(_index("CGI", "/cgi-bin/altws.cgi"))
        user = self._own_data()
        template = open(os.path.join(deploy, "apache-cgi", "local", "httpd.conf.in"),
                        encoding="utf-8").read()
        self._write_config(template, USER=user)
        _make_readable(run)

    def _prepare_run_folder(self) -> str:
        """Make the run folder with ``logs/`` and ``lib/altwebsocket`` (byte-compiled);
        return the web server's Python (a cached venv of Debian's python3)."""
        require_apache()
        os.makedirs(self.cache, mode=0o755, exist_ok=True)
        os.chmod(self.cache, 0o755)
        python = cgi_python(self.cache)
        self.run_dir = tempfile.mkdtemp(prefix=f"altws-{self.kind}-", dir=self.cache)
        os.chmod(self.run_dir, 0o755)
        run = self.run_dir
        os.makedirs(os.path.join(run, "logs"))
        # the package, where the web server user can read it
        shutil.copytree(os.path.join(_package_root(), "altwebsocket"),
                        os.path.join(run, "lib", "altwebsocket"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        # Byte-compile now: the web server user cannot write __pycache__ here, and compiling
        # every module on every request would cost ~0.2 s per request.
        subprocess.run([python, "-m", "compileall", "-q", os.path.join(run, "lib")],
                       check=True)
        return python

    def _own_data(self) -> str:
        """Make the data folder, owned by the web server user when running as root; the
        ``User``/``Group`` lines of Apache's configuration (none when not root)."""
        os.makedirs(self.data, exist_ok=True)
        if os.geteuid() != 0:
            return ""
        _check_reachable(self.data)
        _chown_tree(self.data)
        return f"User {RUN_USER}\nGroup {RUN_USER}"

    def _write_config(self, template: str, **values: str) -> None:
        """Apache's ``httpd.conf`` in the run folder, from ``template`` with ``@NAME@``
        replaced (RUN, HOST, PORT, MODULES, and ``values``)."""
        values = dict(values, RUN=self.run_dir, HOST=self.host, PORT=str(self.port),
                      MODULES=MODULES)
        for name, value in values.items():
            template = template.replace(f"@{name}@", value)
        with open(os.path.join(self.run_dir, "httpd.conf"), "w", encoding="utf-8") as out:
            out.write(template)

    def _write_settings(self, template: str, target: str) -> None:
        lines: list[str] = []
        given = dict(self.settings, data=self.data)
        for line in open(template, encoding="utf-8").read().split("\n"):
            name = line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith(";") and name in given:
                line = f"{name} = {given.pop(name)}"
            lines.append(line)
            if line.strip() == "[altws]":
                marker = len(lines)
        for name, value in given.items():
            lines.insert(marker, f"{name} = {value}")
        with open(target, "w", encoding="utf-8") as out:
            out.write("\n".join(lines))

    def start(self) -> None:
        """Start Apache in the foreground (as a child process) and wait until it answers."""
        conf = os.path.join(self.run_dir, "httpd.conf")
        check = subprocess.run([APACHE, "-t", "-f", conf], capture_output=True, text=True)
        if check.returncode != 0:
            raise ConfigError(f"Apache refused the configuration: {check.stderr.strip()}")
        self.proc = subprocess.Popen([APACHE, "-f", conf, "-DFOREGROUND"],
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError("Apache exited at start:\n" + self.error_log())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise ConfigError("Apache did not start listening:\n" + self.error_log())

    def error_log(self) -> str:
        """Apache's error log so far (where CGI scripts' stderr goes)."""
        try:
            return open(os.path.join(self.run_dir, "logs", "error.log"),
                        encoding="utf-8", errors="replace").read()
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop Apache and remove the run folder (the data folder stays)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = ""


class PassengerServer(CGIServer):
    """The same apps as cPanel's "Setup Python App" serves them: Apache + mod_passenger.

    The run folder holds the application root (``altws/``: ``passenger_wsgi.py`` from
    ``deploy/cpanel-passenger/`` and ``altws.ini``), the web root (``public_html/``: the
    pages, and ``deploy/cpanel-passenger/htaccess`` as its ``.htaccess``), and Passenger's
    own folders; the VirtualHost carries the lines cPanel writes for the app. The app's
    virtualenv is the cached venv of Debian's python3 (``cgi_python``), the package copied
    beside it and put on the path by ``passenger_wsgi.py``, as a user without pip would.
    ``pool`` is ``PassengerMaxPoolSize``: every open stream holds one process, so unless
    ``settings`` give ``max_streams``, ``passenger_wsgi.py`` asks Passenger for the pool and
    uses ``pool - 2`` (at least 1), leaving processes for the POSTs.
    """

    kind = "passenger"

    def __init__(self, data: str, host: str = "127.0.0.1", port: int = 8080,
                 settings: dict[str, str] | None = None,
                 cache: str = "/var/tmp/altws", pool: int = DEFAULT_POOL) -> None:
        if pool < 1:
            raise ConfigError(f"--pool {pool}: Passenger needs at least one process")
        super().__init__(data, host, port, settings, cache)
        self.pool = pool

    def prepare(self) -> None:
        """Lay out the run folder: app root, web root with its .htaccess, Apache's
        configuration, Passenger's private folders."""
        require_passenger()
        python = self._prepare_run_folder()
        run = self.run_dir
        deploy = shipped("deploy", "cpanel-passenger/passenger_wsgi.py")
        app_root = os.path.join(run, "altws")
        public = os.path.join(run, "public_html")
        os.makedirs(app_root)
        shutil.copytree(shipped("static", "altwebsocket.js"), os.path.join(public, "static"))
        with open(os.path.join(public, "index.html"), "w", encoding="utf-8") as out:
            out.write(_index("Passenger", ""))
        shutil.copy(os.path.join(deploy, "cpanel-passenger", "htaccess"),
                    os.path.join(public, ".htaccess"))
        startup = open(os.path.join(deploy, "cpanel-passenger", "passenger_wsgi.py"),
                       encoding="utf-8").read()
        marker = '# sys.path.insert(0, "/home/me/altwebsocket/app")'
        if marker not in startup:
            raise ConfigError("deploy/cpanel-passenger/passenger_wsgi.py lost its "
                              f"{marker!r} line")
        startup = startup.replace(marker, f'sys.path.insert(0, {os.path.join(run, "lib")!r})')
        with open(os.path.join(app_root, "passenger_wsgi.py"), "w", encoding="utf-8") as out:
            out.write(startup)
        self._write_settings(os.path.join(deploy, "cpanel-passenger", "altws.ini"),
                             os.path.join(app_root, "altws.ini"))
        for folder in ("registry", "spawn", "buffers"):
            os.makedirs(os.path.join(run, "passenger", folder))
        user = self._own_data()
        if user:  # the app's files belong to the user it runs as, as a cPanel account's do
            _chown_tree(app_root)
            default_user = f"PassengerDefaultUser {RUN_USER}\nPassengerDefaultGroup {RUN_USER}"
            app_user = f"PassengerUser {RUN_USER}\n    PassengerGroup {RUN_USER}"
        else:
            default_user = app_user = ""
        template = open(os.path.join(deploy, "cpanel-passenger", "local", "httpd.conf.in"),
                        encoding="utf-8").read()
        self._write_config(template, USER=user, POOL=str(self.pool),
                           PASSENGER_USER=default_user, APP_USER=app_user,
                           APP_ROOT=app_root, PYTHON=python)
        _make_readable(os.path.join(run, "public_html"))
        _make_readable(os.path.join(run, "lib"))
        _make_readable(app_root)

    def stop(self) -> None:
        """Stop Apache and Passenger: its watchdog and core (their pids are in the instance
        registry of this run folder) and the app's Python processes (found by this run
        folder in their environment), leaving none behind; then remove the run folder."""
        run = self.run_dir
        proc, self.proc = self.proc, None
        if run:
            helpers = passenger_pids(run)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                # An Apache worker serving a held stream waits on its Python process; ending
                # those now lets Apache exit at once instead of after its 10 s grace.
                _signal_all(run_processes(run), signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=5)
            _stop_all(lambda: run_processes(run) + _alive(helpers))
        super().stop()


def passenger_pids(run: str) -> list[int]:
    """The pids of the Passenger watchdog and core of the run folder ``run``, from the
    instance folders of its registry (``watchdog.pid``, ``core.pid``)."""
    registry = os.path.join(run, "passenger", "registry")
    pids = []
    try:
        instances = os.listdir(registry)
    except OSError:
        return []
    for instance in instances:
        for name in ("watchdog.pid", "core.pid"):
            try:
                with open(os.path.join(registry, instance, name), encoding="ascii") as handle:
                    pids.append(int(handle.read().strip()))
            except (OSError, ValueError):
                pass
    return pids


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that are still Passenger's processes (not zombies, not reused)."""
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                name = handle.read()
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z" and b"Passenger" in name:
            found.append(pid)
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _stop_all(find: Callable[[], list[int]], wait: float = 5.0) -> None:
    """SIGTERM the processes ``find()`` returns until there are none; SIGKILL those still
    there after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        pids = find()
        if not pids:
            return
        late = time.monotonic() > deadline
        _signal_all(pids, signal.SIGKILL if late else signal.SIGTERM)
        if time.monotonic() > deadline + 2:
            return
        time.sleep(0.1)


def run_processes(run: str) -> list[int]:
    """The processes of the run folder ``run``: those naming it in their command line
    (Apache) or environment (the app processes Passenger spawned there), not this one and
    not zombies (their parent reaps them)."""
    needle = (run.rstrip("/") + "/").encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                text = handle.read()
            with open(f"/proc/{pid}/environ", "rb") as handle:
                text += handle.read()
            with open(f"/proc/{pid}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue
        except (OSError, IndexError):
            continue
        if needle in text:
            found.append(int(pid))
    return found


def passenger_max_streams(pool: int) -> int:
    """The streams a pool of ``pool`` Passenger processes can hold while leaving two for
    the POSTs beside them (at least 1)."""
    return max(1, pool - 2)


def _index(title: str, base: str) -> str:
    """The run folder's index page: links to the chat and echo pages on ``base``."""
    return f"""<!doctype html><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1">
<title>AltWebSocket under {title}</title>
<h1>AltWebSocket under {title}</h1>
<ul>
<li><a href="static/chat.html?url={base}/chat">chat</a>
<li><a href="static/echo.html?url={base}/echo">echo</a>
</ul>
"""


def _run(args: argparse.Namespace) -> int:
    settings = {}
    for item in args.set or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: give NAME=VALUE")
        settings[name.strip()] = value.strip()
    server: CGIServer
    if args.passenger:
        server = PassengerServer(args.data, args.host, args.port, settings,
                                 pool=args.pool or DEFAULT_POOL)
    elif args.pool is not None:
        raise ConfigError("--pool is Passenger's pool size: give it with --passenger")
    else:
        server = CGIServer(args.data, args.host, args.port, settings)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        server.prepare()
        server.start()
        if isinstance(server, PassengerServer):
            print(f"AltWebSocket under Apache + Passenger on {server.url}/", flush=True)
            streams = server.settings.get(
                "max_streams", f"{passenger_max_streams(server.pool)} (pool - 2, detected)")
            print(f"  apps: {server.url}/<app>   pool: {server.pool} processes, "
                  f"max_streams {streams}", flush=True)
        else:
            print(f"AltWebSocket under Apache CGI on {server.url}/", flush=True)
            print(f"  apps: {server.url}/cgi-bin/altws.cgi/<app> (or {server.url}/ws/<app>)",
                  flush=True)
        print(f"  data: {server.data}   run folder: {server.run_dir}", flush=True)
        print("  press Ctrl-C to stop", flush=True)
        while not stopping and server.proc is not None and server.proc.poll() is None:
            time.sleep(0.2)
        if server.proc is not None and server.proc.poll() is not None and not stopping:
            print(server.error_log(), file=sys.stderr)
            return 1
        return 0
    finally:
        server.stop()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``altws cgi-server``."""
    parser = sub.add_parser(
        "cgi-server", help="run the apps as CGI under a real local Apache (shared-host mode)",
        description="Lay out the CGI deployment from deploy/apache-cgi/ and cgi-bin/altws.cgi "
                    "and serve it with Debian's apache2 in the foreground (install it first: "
                    "apt-get install apache2). Ctrl-C stops it.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--data", default="./var-cgi", metavar="DIR",
                        help="data folder (default ./var-cgi)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="a setting written into altws.ini (repeatable), "
                             "e.g. --set stream_lifetime=5")
    parser.add_argument("--passenger", action="store_true",
                        help="serve the apps with Apache + mod_passenger as cPanel's \"Setup "
                             "Python App\" does (deploy/cpanel-passenger/; install it first: "
                             "apt-get install libapache2-mod-passenger)")
    parser.add_argument("--pool", type=int, default=None, metavar="N",
                        help=f"with --passenger: PassengerMaxPoolSize, the Python processes "
                             f"and so the ceiling of open streams (default {DEFAULT_POOL}); "
                             f"max_streams defaults to N - 2")
    parser.set_defaults(func=_run)
