"""Helpers of the reliability tests: an in-process app, and reading what a stream would send."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import webtest

from altwebsocket import AltWebSocketServer, WSGIApp
from altwebsocket.config import Settings
from altwebsocket.protocol import messages as wire
from altwebsocket.protocol.sse import SSEDecoder

__all__ = ["make_server", "web_app", "new", "post", "stored_events", "state_of"]


def make_server(data_dir: str, clock: Any = None, **settings: Any) -> AltWebSocketServer:
    """An in-process server with echo and chat on a fresh SQLite file in ``data_dir``
    (reading the time from ``clock`` if given)."""
    values: Dict[str, Any] = dict(data=data_dir, stream_lifetime=5, heartbeat=1,
                                  poll_interval=0.2)
    values.update(settings)
    if clock is None:
        return AltWebSocketServer(settings=Settings(**values))
    return AltWebSocketServer(settings=Settings(**values), clock=clock)


def web_app(server: AltWebSocketServer, remote: str = "127.0.0.1") -> webtest.TestApp:
    """WebTest around the server's endpoints; requests come from ``remote``."""
    return webtest.TestApp(WSGIApp(server), extra_environ={"REMOTE_ADDR": remote})


def new(app: webtest.TestApp, name: str = "echo", status: Any = 200, **extra: Any
        ) -> Dict[str, Any]:
    """``POST /<name>/new``; the JSON answer."""
    return app.post(f"/{name}/new", "", status=status, **extra).json  # type: ignore


def post(app: webtest.TestApp, path: str, body: Any, status: Any = 200, **extra: Any) -> Any:
    """POST a JSON body; the response (``.json``, ``.headers``)."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return app.post(path, data, status=status, **extra)


def stored_events(server: AltWebSocketServer, conn_id: str, after: int = 0
                  ) -> List[Tuple[int, Any]]:
    """What the stream would send after ``after``, decoded."""
    stored = server.storage.events_after(conn_id, after, limit=100000)
    raw = b"".join(wire.event_for(*event[:3]).encode() for event in stored)
    return [(int(e.id), wire.message_from_event(e)) for e in SSEDecoder().feed(raw)]


def state_of(server: AltWebSocketServer, conn_id: str) -> Tuple[Any, ...]:
    """The parts of a connection's row a refused request must not change."""
    record = server.storage.connection(conn_id)
    assert record is not None
    events = server.storage.events_after(conn_id, 0, limit=100000)
    return (record.state, record.last_seq, record.last_event, record.close_code, tuple(events))
