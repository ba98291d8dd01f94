"""waitress as ``altws serve`` runs it: a channel that sends a write at once from the
writing thread, so that the main loop does not spin while a thousand streams are written.

waitress lets any thread write a response: ``write_soon`` appends the bytes to the
channel's output buffer under its lock, then sends them. Between the two its main loop,
which reads the buffer's length without the lock, sees a channel with output waiting; it
asks ``poll()`` whether that socket can take it (it can, at once), finds the lock taken,
and goes round again — a pass over every channel each time, holding the GIL that the
writing thread needs back after its ``send()``. Measured with 1,000 held streams and a
broadcast to them (``python -m benchmarks``, fan-out): thousands of such rounds during one
broadcast, single writes waiting up to 1.8 s for the GIL, the last of the 1,000 streams
written 1–3 s after the first (p99 2.7 s).

:class:`DirectChannel` sends the bytes on the socket itself, holding the buffer's lock,
when nothing is buffered before them: they never sit in the buffer, the main loop has
nothing to look at, and the same broadcast reaches the 1,000 streams in ~30 ms. What the
socket does not take (a client that reads slowly) is buffered and sent as waitress always
does, and so is everything behind it.
"""

from __future__ import annotations

import time
from typing import Any

from waitress.channel import HTTPChannel

__all__ = ["DirectChannel"]


class DirectChannel(HTTPChannel):  # type: ignore[misc]  # (waitress has no type hints)
    """waitress's channel, but :meth:`write_soon` sends what it can at once (module doc)."""

    def write_soon(self, data: Any) -> int:
        if data and self.connected and not self.total_outbufs_len and \
                isinstance(data, (bytes, bytearray, memoryview)):
            with self.outbuf_lock:  # (reentrant: the write_soon below takes it again)
                if self.connected and not self.total_outbufs_len:
                    try:
                        sent = int(self.socket.send(data))
                    except OSError:  # would block, or gone: waitress's own path sees to it
                        sent = 0
                    if sent:
                        self.last_activity = time.time()
                        if sent == len(data):
                            return sent
                        return sent + int(super().write_soon(data[sent:]))
        return int(super().write_soon(data))
