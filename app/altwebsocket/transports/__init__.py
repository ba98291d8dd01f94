"""The transports: thin adapters that move bytes between clients and the server.

- :mod:`.http` — the emulation: WSGI endpoints, the SSE stream, the token check, CGI;
- :mod:`.websocket` — the native WebSocket daemon and its per-connection peers.

Each depends on :class:`~altwebsocket.server.AltWebSocketServer` (and the storage API it
exposes); the server depends on no transport.
"""
