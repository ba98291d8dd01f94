"""Native WebSocket (RFC 6455): the optional daemon over the same server and storage.

- :mod:`.daemon` — :class:`~.daemon.AltWebSocketDaemon` and ``altws daemon``;
- :mod:`.peer` — one client held by the daemon and its bounded send queue.
"""
