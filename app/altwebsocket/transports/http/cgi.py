"""Run the apps as a CGI script (``cgi-bin/altws.cgi`` calls :func:`run`).

Settings come from an INI file next to the script (suEXEC wipes the environment). Under CGI
the defaults respect a shared host: streams live 45 s (well inside Apache's 60 s ``Timeout``
and proxies' idle limits), at most 12 are held at once (each holds one of the host's ~20
entry processes; clients beyond poll), and a connection sends at most 100 messages a second
(each POST is a new process).

**The CGI rule.** Every CGI request is a new interpreter, so every module it imports costs
every request: a ``/send`` must cost little more than starting Python. What ``run`` imports —
this module, :mod:`.wsgi`, :mod:`.stream`, :mod:`.auth`, the server, the handler API, the
storage's SQLite path, the protocol, the config, the exceptions and the apps — imports at
module level neither Flask, SQLAlchemy, ``wsgiref``, ``typing``, ``logging`` nor
``dataclasses``: type names are imported under ``if TYPE_CHECKING:`` (see
:mod:`altwebsocket._lazy`), logging only when something is logged, SQLAlchemy only to create
a database. ``tests/transports/test_cgi_imports.py`` starts a fresh interpreter, imports this
module and fails if any of them is loaded.
"""

from __future__ import annotations

import os
import sys

from ..._lazy import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Callable

__all__ = ["run", "serve_cgi", "CGI_DEFAULTS"]

# max_rate: under CGI every POST is a new process, the account's scarce resource; the
# persistent transports default to 5,000 (docs/security.md, "Why these defaults")
CGI_DEFAULTS = {"stream_lifetime": 45.0, "max_streams": 12, "max_rate": 100.0}


def _terminate(signum: int, frame: Any) -> None:
    # Apache sends SIGTERM when the client has gone (then SIGKILL 3 s later). Python's
    # default action would skip ``finally`` blocks; SystemExit runs them.
    raise SystemExit(0)


def run(config_path: str | None = None) -> None:
    """Serve one CGI request with the apps and settings of ``config_path``."""
    # the C module: signal.py builds enums of every signal (enum is ~1 ms to import)
    import _signal  # type: ignore[import-not-found,unused-ignore]

    _signal.signal(_signal.SIGTERM, _terminate)
    from ...config import convert, load_settings, read_ini
    from ...exceptions import ConfigError

    path = config_path or os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])),
                                       "altws.ini")
    try:
        given = read_ini(path).get("altws", {})
        defaults = {name: convert(name, str(value)) for name, value in CGI_DEFAULTS.items()
                    if name not in given}
        settings = load_settings(path, **defaults)
        from ...server import AltWebSocketServer

        server = AltWebSocketServer(settings=settings)
    except ConfigError as exc:
        sys.stderr.write(f"AltWebSocket configuration error: {exc.message}\n")  # error log
        body = b'{"error": "config", "message": "the server is misconfigured; see its log"}'
        _write_response("503 Service Unavailable",
                        [("Content-Type", "application/json"), ("Retry-After", "60")], [body])
        return
    from .wsgi import WSGIApp

    serve_cgi(WSGIApp(server))


def serve_cgi(app: Callable[..., Iterable[bytes]]) -> None:
    """Run a WSGI application for the CGI request in ``os.environ`` (CGI/1.1, RFC 3875).

    Headers go out with the first body chunk, and every chunk is flushed at once, so an
    SSE stream reaches the client event by event.
    """
    environ: dict[str, Any] = dict(os.environ)
    environ.update({
        "wsgi.input": sys.stdin.buffer,
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": True,
        "wsgi.url_scheme": "https" if environ.get("HTTPS", "off").lower() in
                           ("on", "1", "yes") else "http",
    })
    environ.setdefault("PATH_INFO", "")
    environ.setdefault("SCRIPT_NAME", "")
    state: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        state["status"], state["headers"] = status, headers
        return lambda data: None  # the write() callable: unused by our apps

    body = app(environ, start_response)
    out = sys.stdout.buffer
    try:
        sent = False
        for chunk in body:
            if not chunk:
                continue
            if not sent:
                out.write(_head(state["status"], state["headers"]))
                sent = True
            out.write(chunk)
            out.flush()
        if not sent:
            out.write(_head(state["status"], state["headers"]))
            out.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"Status: {status}"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _write_response(status: str, headers: list[tuple[str, str]], body: list[bytes]) -> None:
    out = sys.stdout.buffer
    out.write(_head(status, headers + [("Content-Length", str(sum(map(len, body))))]))
    for chunk in body:
        out.write(chunk)
    out.flush()
