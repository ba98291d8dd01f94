"""The ``altws`` command: ``altws serve`` and the other subcommands (``altws --help``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any, Callable

from .config import DEFAULT_APPS, Settings, load_settings
from .exceptions import AltWebSocketError, ConfigError

__all__ = ["main", "settings_from_args", "raise_open_file_limit"]


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="data folder; the SQLite file lives here (default: ./var)")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="SQLAlchemy URL of the storage (default: sqlite:///DIR/altws.db)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="an INI settings file (see docs/deploy-shared-hosting.md)")
    parser.add_argument("--app", action="append", default=None, metavar="NAME=module:Class",
                        help="serve this app (repeatable; default: echo and chat)")
    parser.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                        help="also accept this Origin (repeatable; '*' for any)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from ``--config`` (if given), then the command-line options over them.
    A relative ``--data`` is relative to the working directory (a relative ``data`` inside
    the INI file is relative to the file)."""
    overrides: dict[str, Any] = {}
    if args.data is not None:
        overrides["data"] = os.path.abspath(args.data)
    if args.storage is not None:
        overrides["storage"] = args.storage
    if args.allow_origin:
        overrides["allowed_origins"] = tuple(args.allow_origin)
    if args.app:
        apps = {}
        for item in args.app:
            name, sep, spec = item.partition("=")
            if not sep:
                spec = DEFAULT_APPS.get(name, "")
                if not spec:
                    raise ConfigError(f"--app {item!r}: give NAME=module:Class")
            apps[name] = spec
        overrides["apps"] = apps
    if args.config:
        return load_settings(args.config, **overrides)
    return Settings(**overrides).validate()


def _serve(args: argparse.Namespace) -> int:
    from .server import AltWebSocketServer
    from .site import create_site
    from .transports.http.waitress_channel import create_server
    from .transports.http.wsgi import WSGIApp

    settings = settings_from_args(args)
    # the fewer of --streams and max_streams (the config's)
    streams = min(args.streams, settings.max_streams)
    settings = settings.replace(max_streams=streams)
    if args.websocket_url:
        settings = settings.replace(websocket_url=args.websocket_url)
    os.makedirs(settings.data, exist_ok=True)
    raise_open_file_limit(2 * args.streams + 512)  # a stream: its socket, its wake socket
    collect_less_often()
    site_app = _LateApp()
    httpd = create_server(site_app, args.host, args.port,
                          connections=args.streams + 100,  # (pollers and POSTs come and go)
                          channel_timeout=max(120, int(settings.heartbeat * 4)))
    port = int(httpd.effective_port)
    url = f"http://{args.host}:{port}/"
    daemon = None
    if not args.no_daemon and not args.websocket_url:
        # the pages served here connect to the daemon: their origin must be allowed there
        own = tuple(f"http://{host}:{port}" for host in {args.host, "localhost", "127.0.0.1"})
        daemon_settings = settings.replace(
            allowed_origins=tuple(settings.allowed_origins) + own)
        daemon = _start_daemon_beside(daemon_settings, args, port)
        if daemon is not None and not settings.websocket_url:
            settings = settings.replace(websocket_url=daemon.url.rstrip("/"))
    server = AltWebSocketServer(settings=settings)
    try:
        server.storage.ensure_schema()
    except AltWebSocketError as exc:  # a locked, corrupt or unwritable database
        print(f"altws: the storage is not usable yet ({exc.message}); answering 503 "
              "until it is", file=sys.stderr, flush=True)
    endpoints = WSGIApp(server, direct_writes=True)  # waitress: write() from any thread
    site_app.app = create_site(endpoints)
    print(f"AltWebSocket serving {', '.join(server.handlers)} on {url}", flush=True)
    if daemon is not None:
        print(f"  native WebSocket daemon on {daemon.url} (advertised by /info)", flush=True)
    print(f"  storage: {server.storage.url}", flush=True)
    print("  press Ctrl-C to stop", flush=True)

    def stop(signum: int, frame: Any) -> None:
        # waitress would wait up to 5 s per thread pool; the streams end themselves instead
        # (their clients resume with Last-Event-ID), then the process exits at once.
        print("altws: stopping", flush=True)
        if daemon is not None:
            daemon.stop()  # native clients get 1001
        endpoints.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    httpd.run()
    return 0


def _add_daemon_command(sub: Any) -> None:
    """``altws daemon``: serve the apps over native WebSocket (see :mod:`.daemon`)."""
    daemon = sub.add_parser("daemon", help="run the native WebSocket daemon",
                            description="Serve every app at ws://HOST:PORT/<app> over native "
                                        "WebSocket, sharing the storage (and so the chat "
                                        "rooms) with altws serve and the CGI endpoints.")
    daemon.add_argument("--host", default="127.0.0.1")
    daemon.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    daemon.add_argument("--threaded", action="store_true",
                        help="run the app callbacks in a worker thread, not the event loop")
    daemon.add_argument("-v", "--verbose", action="store_true", help="log more")
    _add_settings_options(daemon)

    def run(args: argparse.Namespace) -> int:
        from .transports.websocket.daemon import run_daemon

        settings = settings_from_args(args)
        if not settings.storage:
            os.makedirs(settings.data, exist_ok=True)
        collect_less_often()

        def ready(url: str) -> None:
            print(f"AltWebSocket daemon serving {', '.join(settings.apps)} on {url}", flush=True)
            print(f"  storage: {settings.storage_url()}", flush=True)

        return run_daemon(settings, args.host, args.port, ready=ready, threaded=args.threaded)

    daemon.set_defaults(func=run)


class _DaemonThread:
    """The native WebSocket daemon running in a thread beside ``altws serve``."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        import threading

        from .transports.websocket.daemon import run_daemon

        self.url = ""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self.error: BaseException | None = None

        def ready(url: str) -> None:
            self.url = url
            self._ready.set()

        def target() -> None:
            try:
                run_daemon(settings, host, port, ready=ready, stop=self._stop)
            except BaseException as exc:  # reported by _start_daemon_beside
                self.error = exc
                self._ready.set()

        self._thread = threading.Thread(target=target, name="altws-daemon", daemon=True)
        self._thread.start()
        self._ready.wait(15)

    def stop(self, timeout: float = 3.0) -> None:
        """Close every native client with 1001 and stop."""
        self._stop.set()
        self._thread.join(timeout)


def raise_open_file_limit(wanted: int) -> None:
    """Raise the soft limit on open files towards ``wanted`` (within the hard limit)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):  # not on this platform: keep the limit
        pass


GC_YOUNG = 20_000
"""The persistent servers' threshold for Python's youngest garbage collection (700 by
default)."""


def collect_less_often() -> None:
    """Collect cyclic garbage less often in a long-running server (``altws serve``,
    ``altws daemon``). With 1,000 clients a full collection walks every live object for
    60–90 ms (measured on a 2-core machine, docs/performance.md): at Python's default
    threshold the objects a broadcast has in flight (its events, its frames) outlive a
    young collection or two, are promoted, and bring on such a pause every dozen
    broadcasts; the bench's fan-out tail was one of them. With :data:`GC_YOUNG` they
    mostly die young; a young collection then takes ~5 ms. (Reference counting frees
    everything without cycles at once either way.)"""
    import gc

    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG), middle, old)


class _LateApp:
    """A WSGI app whose target is set once the server's port (and so its origin) is known."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.app(environ, start_response)


def _start_daemon_beside(settings: Settings, args: argparse.Namespace,
                         http_port: int) -> _DaemonThread | None:
    port = args.daemon_port if args.daemon_port is not None else (
        http_port + 1 if args.port else 0)
    daemon = _DaemonThread(settings, args.host, port)
    if daemon.error is not None or not daemon.url:
        print(f"altws: the native WebSocket daemon did not start on port {port} "
              f"({daemon.error or 'timeout'}); serving the emulation only", file=sys.stderr,
              flush=True)
        return None
    return daemon


def build_parser() -> argparse.ArgumentParser:
    """The ``altws`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="altws",
        description="AltWebSocket: WebSocket API over SSE + POST (CGI or WSGI) "
                    "or native WebSocket.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the local server with the chat and echo pages",
                           description="Serve the apps over SSE + POST with a threaded WSGI "
                                       "server (waitress), plus an index page and the static "
                                       "pages, and the native WebSocket daemon beside it "
                                       "(advertised by /info, so browsers in auto mode use "
                                       "it).")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--streams", type=int, default=10000,
                       help="streams this server holds at once (beyond, or beyond the "
                            "config's max_streams, the clients poll; default 10000)")
    serve.add_argument("--daemon-port", type=int, default=None, metavar="PORT",
                       help="port of the native WebSocket daemon started beside the server "
                            "(default: --port + 1, i.e. 8001; 0 when --port is 0)")
    serve.add_argument("--no-daemon", action="store_true",
                       help="do not start the daemon: the emulation (SSE + POST) only")
    serve.add_argument("--websocket-url", default=None, metavar="URL",
                       help="advertise this native WebSocket base URL in /info instead of "
                            "starting a daemon (e.g. one behind a proxy, or altws daemon)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log more")
    _add_settings_options(serve)
    serve.set_defaults(func=_serve)
    _add_daemon_command(sub)
    from .client.cli import add_parser as add_client_parser
    add_client_parser(sub)
    from .cgiserver import add_parser as add_cgi_server_parser
    add_cgi_server_parser(sub)
    from .bench.cli import add_parser as add_bench_parser
    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``altws`` console command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"altws: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
