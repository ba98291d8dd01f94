"""One native WebSocket client held by the daemon, and its bounded send queue.

The daemon's database side (which runs the handler callbacks) hands a client frames in commit
order with :meth:`NativeClient.push`; one writer task per client moves them to the socket with
``websockets``' own flow control. The queue is bounded: a client that falls behind by more
than ``max_frames`` frames or ``max_bytes`` bytes is a slow reader and is closed with 1008
(policy violation) — its queued frames are dropped, as the connection ends anyway. A native
connection has no resume, so nothing is kept for it after that.

Rules this module keeps:

1. Frames reach the socket in the order they were pushed; a :class:`CloseFrame` is the last
   thing sent (later pushes are dropped).
2. Memory per client is at most ``max_bytes`` queued plus ``websockets``' ``write_limit``.
3. Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Union

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ...protocol.close import CloseCode
from ...protocol.close import sendable_close as _sendable

__all__ = ["CloseFrame", "Frame", "NativeClient", "sendable_close"]

log = logging.getLogger("altwebsocket.daemon")


@dataclass(frozen=True)
class CloseFrame:
    """A request to close the socket with this code and reason (after the queued frames)."""

    code: int
    reason: str


Frame = Union[str, bytes, CloseFrame]
"""What a client's queue holds: a text message, a binary message, or the final close."""


def sendable_close(code: int, reason: str) -> CloseFrame:
    """The close frame for a stored close
    (see :func:`~altwebsocket.protocol.close.sendable_close`)."""
    return CloseFrame(*_sendable(code, reason))


class NativeClient:
    """A native connection: its ids, its client seq counter, its stored-event cursor, its queue.

    Attributes:
        ws: the ``websockets`` connection.
        app: the app name (the URL path).
        id: the connection id in the storage.
        protocol: the subprotocol chosen.
        seq: the number of messages received from the client and handled (1, 2, 3…; kept
            here, not in the storage: a native socket has no retries to deduplicate).
        bucket: the ``max_rate`` token bucket ``(tokens, at)``, kept here too.
        cursor: the id of the last stored event sent (stored events come from other processes,
            broadcasts and closes; messages a handler sends to this very connection from this
            process skip the storage and have no id).
        discarded: the event id up to which stored events were deleted.
    """

    def __init__(self, ws: ServerConnection, app: str, conn_id: str, max_frames: int,
                 max_bytes: int, protocol: str = "") -> None:
        self.ws = ws
        self.app = app
        self.id = conn_id
        self.protocol = protocol
        self.seq = 0
        self.bucket: tuple[float, float] | None = None  # max_rate's token bucket, in memory
        self.cursor = 0
        self.discarded = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._queue: collections.deque[Frame] = collections.deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._closing = False
        self._held = False
        self._busy = False
        self._writer: asyncio.Task[None] | None = None

    @property
    def closing(self) -> bool:
        """Whether a close was queued or sent: later frames are dropped."""
        return self._closing

    def start(self) -> None:
        """Start the writer task (on the event loop)."""
        self._writer = asyncio.get_running_loop().create_task(self._write())

    def push(self, frame: Frame) -> None:
        """Queue one frame; closes the connection with 1008 when the queue is over its bound."""
        if self._closing:
            return
        if isinstance(frame, CloseFrame):
            self._closing = True
        else:
            size = len(frame)  # bytes, or characters of text (about its memory)
            if len(self._queue) >= self.max_frames or self._bytes + size > self.max_bytes:
                self._overflow()
                return
            self._bytes += size
        self._queue.append(frame)
        if not self._held:
            self._ready.set()

    def hold(self) -> None:
        """The caller will send what gets queued now itself (:meth:`release`): the echo path
        then writes its reply without waking the writer task."""
        self._held = True

    async def release(self) -> None:
        """End :meth:`hold`: send the queued frames here, or hand them to the writer."""
        self._held = False
        if self._queue:
            if self._busy:
                self._ready.set()
            else:
                await self._send_queued()

    def _overflow(self) -> None:
        log.warning("client %s/%s reads too slowly: closing it with 1008", self.app, self.id)
        frame = CloseFrame(CloseCode.POLICY_VIOLATION, "send queue full: reading too slowly")
        self._queue.clear()
        self._bytes = 0
        self._closing = True
        # The writer may be stuck waiting for a slow reader: close without waiting for it.
        asyncio.get_running_loop().create_task(self._close(frame))

    async def _close(self, frame: CloseFrame) -> None:
        try:
            await self.ws.close(frame.code, frame.reason)
        except Exception as exc:  # the socket may already be gone
            log.debug("closing %s: %s", self.id, exc)

    async def _send_queued(self) -> None:
        if self._busy:
            return  # the other sender's loop takes what was queued
        self._busy = True
        ws, queue = self.ws, self._queue
        try:
            while queue:
                frame = queue.popleft()
                if isinstance(frame, CloseFrame):
                    await self._close(frame)
                    return
                self._bytes -= len(frame)
                await ws.send(frame)
        except ConnectionClosed:
            queue.clear()
        finally:
            self._busy = False

    async def _write(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                await self._send_queued()
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug here must not kill the daemon
            log.exception("writer of %s failed", self.id)
            await self._close(CloseFrame(1011, "internal error"))

    async def stop(self) -> None:
        """Stop the writer (the socket is closed already)."""
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            try:
                await writer
            except (asyncio.CancelledError, Exception):
                pass
