"""A Python client for AltWebSocket apps, with the browser's model, over either transport.

::

    from altwebsocket.client import connect

    with connect("http://127.0.0.1:8000/echo", emulate=True) as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))      # hello
        ws.send(b"\\x00\\xff")
        print(ws.recv(timeout=5))      # b'\\x00\\xff'
    print(ws.close_code)               # 1000

- :mod:`.emulation` — SSE + POST as in ``docs/protocol.md`` (seq numbers, retries with the
  same seq, batching, ``Last-Event-ID`` resume, backoff on 503/429);
- :mod:`.native` — RFC 6455 WebSocket through the ``websockets`` library;
- :mod:`.connection` — :func:`connect` (auto mode: native when ``B/info`` advertises it and
  it connects, else the emulation) and the blocking :class:`Client`;
- :mod:`.cli` — the ``altws client`` command (``altws client --help``).

Pass ``debug=print`` (or any callable taking a string) to see the traffic.
"""

from __future__ import annotations

from .connection import CLOSED, CLOSING, CONNECTING, OPEN, Client, connect
from .errors import ClientError, Closed, ConnectFailed

__all__ = [
    "connect",
    "Client",
    "ClientError",
    "ConnectFailed",
    "Closed",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
]
