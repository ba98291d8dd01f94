"""Mount AltWebSocket apps inside an existing Flask application, at a URL prefix.

::

    from flask import Flask
    from altwebsocket import AltWebSocketServer
    from altwebsocket.flask_ext import mount

    app = Flask(__name__)
    server = AltWebSocketServer({"chat": Chat()}, storage="sqlite:///var/altws.db")
    mount(app, server, "/ws")        # chat is now at /ws/chat/...

The endpoints are dispatched before Flask sees the request (werkzeug's
``DispatcherMiddleware``), so Flask's request handling adds nothing to their cost and the
SSE stream is not buffered.
"""

from __future__ import annotations

from typing import Any

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from .server import AltWebSocketServer
from .transports.http.wsgi import WSGIApp

__all__ = ["mount"]


def mount(flask_app: Any, server: AltWebSocketServer, prefix: str = "/ws") -> None:
    """Serve ``server``'s apps under ``prefix`` of ``flask_app`` (e.g. ``/ws/chat/``)."""
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError("prefix must start with '/' and not end with it, e.g. '/ws'")
    flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app, {prefix: WSGIApp(server)})
    flask_app.extensions["altwebsocket"] = server
