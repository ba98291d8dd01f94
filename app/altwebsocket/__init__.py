"""AltWebSocket: a realtime two-way socket with the W3C WebSocket API that runs anywhere —
as plain CGI (Server-Sent Events + HTTP POST), as a WSGI app, or over native WebSocket from an
optional daemon — with one handler API and one storage under all of them.

Importing this package imports neither Flask nor SQLAlchemy (a CGI request cannot afford it).
"""

from __future__ import annotations

from .config import Settings, load_settings
from .exceptions import AltWebSocketError
from .handler import AltWebSocketConnection, AltWebSocketHandler, AppStorage
from .server import AltWebSocketServer
from .storage import AltWebSocketStorage
from .transports.http.wsgi import WSGIApp

__all__ = [
    "AltWebSocketServer",
    "AltWebSocketHandler",
    "AltWebSocketConnection",
    "AltWebSocketStorage",
    "AppStorage",
    "WSGIApp",
    "AltWebSocketError",
    "Settings",
    "load_settings",
    "__version__",
]

__version__ = "0.1.0"
