"""The local site of ``altws serve``: an index page, the static pages, and the apps at
``/<app>/``, as one WSGI application (a Flask app with the AltWebSocket endpoints in front)."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from typing import Any, Callable

from flask import Flask, abort, send_from_directory

from .resources import shipped
from .transports.http.wsgi import WSGIApp

__all__ = ["static_dir", "create_site"]


def static_dir() -> str:
    """The folder of the shipped browser files (``static/``)."""
    return shipped("static", "altwebsocket.js")


_PAGES = {"chat": "chat.html", "echo": "echo.html"}
# 'self' plus WebSocket connections (the daemon listens on another port of the same host)
_CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"


def create_site(endpoints: WSGIApp, static: str = "") -> Callable[..., Iterable[bytes]]:
    """A WSGI app: ``/`` index, ``/static/…`` files, ``/<app>/…`` the AltWebSocket endpoints."""
    server = endpoints.server
    folder = static or static_dir()
    site = Flask("altwebsocket.site", static_folder=None)

    @site.route("/")
    def index() -> Any:
        rows = []
        for name in server.handlers:
            page = _PAGES.get(name)
            target = f"/static/{page}?url=/{name}" if page and os.path.isfile(
                os.path.join(folder, page)) else f"/{name}/info"
            rows.append(f'<li><a href="{html.escape(target)}">{html.escape(name)}</a> '
                        f'<small>endpoint <code>/{html.escape(name)}/</code></small></li>')
        body = (
            "<!doctype html><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            "<title>AltWebSocket</title><h1>AltWebSocket</h1><ul>" + "".join(rows) + "</ul>"
        )
        return body, 200, {"Content-Type": "text/html; charset=utf-8",
                           "Content-Security-Policy": _CSP}

    @site.route("/static/<path:name>")
    def static_file(name: str) -> Any:
        if not os.path.isdir(folder):
            abort(404)
        response = send_from_directory(folder, name, max_age=0)
        if name.endswith(".html"):
            # the pages render other people's text: no inline script may ever run
            response.headers["Content-Security-Policy"] = _CSP
        return response

    flask_wsgi = site.wsgi_app

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        first = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
        if first in ("", "static", "favicon.ico"):
            return flask_wsgi(environ, start_response)
        # every other path is an app's (a JSON 404 "unknown" for an app that does not exist)
        return endpoints(environ, start_response)

    site.wsgi_app = dispatch  # type: ignore[method-assign]
    return site
