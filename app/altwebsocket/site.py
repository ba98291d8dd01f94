"""The local site of ``altws serve``: an index page, the static pages, and the apps at
``/<app>/``, as one WSGI application (a Flask app with the AltWebSocket endpoints in front)."""

from __future__ import annotations

import html
import os
from typing import Any, Callable, Dict, Iterable

from flask import Flask, abort, send_from_directory

from .resources import shipped
from .server import AltWebSocketServer

__all__ = ["static_dir", "create_site"]


def static_dir() -> str:
    """The folder of the shipped browser files (``static/``)."""
    return shipped("static", "altwebsocket.js")


_PAGES = {"chat": "chat.html", "echo": "echo.html"}


def create_site(server: AltWebSocketServer, static: str = "") -> Callable[..., Iterable[bytes]]:
    """A WSGI app: ``/`` index, ``/static/…`` files, ``/<app>/…`` the AltWebSocket endpoints."""
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
                           "Content-Security-Policy": "default-src 'self'"}

    @site.route("/static/<path:name>")
    def static_file(name: str) -> Any:
        if not os.path.isdir(folder):
            abort(404)
        return send_from_directory(folder, name, max_age=0)

    endpoints = server.wsgi_app
    flask_wsgi = site.wsgi_app
    apps = set(server.handlers)

    def dispatch(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        first = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
        if first in apps:
            return endpoints(environ, start_response)  # type: ignore[no-any-return]
        return flask_wsgi(environ, start_response)  # type: ignore[no-any-return]

    site.wsgi_app = dispatch  # type: ignore[method-assign]
    return site
