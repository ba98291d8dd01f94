"""The blocking client: :func:`connect` picks a transport, :class:`Client` is the socket.

The model is the browser's ``AltWebSocket``/``WebSocket``: ``send`` text or bytes, receive
messages in order, ``close(code, reason)``, then read ``close_code`` and ``close_reason``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from ..protocol.close import CloseCode
from ..protocol.close import validate_client_close as validate_close
from .emulation import EmulatedTransport, fetch_info
from .errors import Closed, ConnectFailed
from .native import NativeTransport
from .transport import Debug, Message, Sink, Transport

__all__ = ["Client", "connect", "CONNECTING", "OPEN", "CLOSING", "CLOSED"]

# readyState values, as in the W3C API.
CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3


class _CloseMark:
    """Queued after the last message: the connection is closed."""


class Client(Sink):
    """One open connection, over either transport. Thread-safe for one reader and writers.

    Use :func:`connect` to make one. It is a context manager (closing with 1000 on exit) and
    an iterator over the messages received until the close.
    """

    def __init__(self, transport: Transport, url: str) -> None:
        self.url = url
        self._transport = transport
        self._queue: queue.Queue[Message | _CloseMark] = queue.Queue()
        self._closed = threading.Event()
        self._state = CONNECTING
        self.close_code: int | None = None
        """The close code once closed (1005: no status; 1006: lost), else ``None``."""
        self.close_reason: str = ""
        """The close reason once closed."""
        self.received = 0
        """How many messages arrived so far."""

    # -- properties of the W3C API ---------------------------------------------------------

    @property
    def transport(self) -> str:
        """``"emulation"`` or ``"native"``."""
        return self._transport.name

    @property
    def protocol(self) -> str:
        """The subprotocol the server chose, or ``""``."""
        return self._transport.protocol

    @property
    def ready_state(self) -> int:
        """``CONNECTING`` (0), ``OPEN`` (1), ``CLOSING`` (2) or ``CLOSED`` (3)."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once the close is known (``close_code`` is set)."""
        return self._closed.is_set()

    @property
    def buffered_amount(self) -> int:
        """Bytes sent but not yet accepted by the server (emulation)."""
        return self._transport.buffered_amount

    # -- Sink ----------------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        """Called by the transport: queue a received message."""
        self.received += 1
        self._queue.put(message)

    def on_close(self, code: int, reason: str) -> None:
        """Called by the transport: the connection is closed."""
        if self._closed.is_set():
            return
        self.close_code, self.close_reason = code, reason
        self._state = CLOSED
        self._closed.set()
        self._queue.put(_CloseMark())

    # -- the API --------------------------------------------------------------------------------

    def _open(self) -> Client:
        self._transport.open(self)
        if not self._closed.is_set():
            self._state = OPEN
        return self

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Raises:
            Closed: the connection is closing or closed.
            TypeError: ``message`` is neither text nor bytes.
        """
        if isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
        if not isinstance(message, (str, bytes)):
            raise TypeError(f"a message is str or bytes, not {type(message).__name__}")
        if self._state != OPEN:
            raise Closed(self.close_code or CloseCode.ABNORMAL, self.close_reason)
        self._transport.send(message)

    def recv(self, timeout: float | None = None) -> Message:
        """The next message, waiting at most ``timeout`` seconds (``None``: forever).

        Raises:
            TimeoutError: nothing arrived in time.
            Closed: the connection is closed and every message was read.
        """
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None
        if isinstance(item, _CloseMark):
            self._queue.put(item)  # every later recv() raises too
            raise Closed(self.close_code or CloseCode.ABNORMAL, self.close_reason)
        return item

    def __iter__(self) -> Iterator[Message]:
        """The messages, in order, until the connection closes."""
        while True:
            try:
                yield self.recv()
            except Closed:
                return

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the server accepted every message sent so far; True if it did."""
        return self._transport.flush(timeout)

    def close(self, code: int | None = None, reason: str = "",
              timeout: float = 10.0) -> None:
        """Close as ``WebSocket.close(code, reason)`` does, and wait for the close.

        ``code`` is 1000 or 3000–4999 and ``reason`` at most 123 UTF-8 bytes (else
        :class:`~altwebsocket.exceptions.ProtocolError`); without a code the close carries
        no status and the server sees 1005. Messages sent before are delivered first. When
        the server does not confirm within ``timeout`` seconds, the connection is dropped and
        ``close_code`` is 1006.
        """
        if code is not None:
            validate_close(code, reason)
        elif reason:
            raise ValueError("a close reason needs a close code")
        if self._state in (CLOSING, CLOSED):
            self.wait_closed(timeout)
            return
        self._state = CLOSING
        try:
            self._transport.close(code, reason)
        except Exception:  # the transport failed: the connection is gone
            self._transport.abort()
            self.on_close(CloseCode.ABNORMAL, "")
            return
        if not self._closed.wait(timeout):
            self._transport.abort()
            self.on_close(CloseCode.ABNORMAL, "")

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection is closed; True if it is."""
        return self._closed.wait(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.closed:
            self.close(1000)

    def __repr__(self) -> str:
        return f"<Client {self.url} {self.transport} state={self._state}>"


def connect(url: str, emulate: bool | None = None, protocols: Sequence[str] = (),
            debug: Debug = None, timeout: float = 10.0) -> Client:
    """Open a connection to an app, like ``new AltWebSocket(url, emulate)``.

    Args:
        url: the app's base URL ``B`` (``http://host:port/echo``), or a ``ws://`` /
            ``wss://`` URL to speak native WebSocket to it directly.
        emulate: ``True``: SSE + POST; ``False``: native WebSocket at the URL ``B/info``
            advertises; ``None`` (auto): native when ``B/info`` advertises it and it
            connects, otherwise the emulation.
        protocols: subprotocols to offer, in order of preference.
        debug: a callback given one line of text per request, status, event or frame.
        timeout: seconds allowed to open (and for each HTTP request).

    Raises:
        ConnectFailed: the server cannot be reached, or refused the connection.
        ValueError: the URL is not http(s):// or ws(s)://, or does not fit ``emulate``.
    """
    protocols = tuple([protocols] if isinstance(protocols, str) else protocols)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("ws", "wss"):
        if emulate:
            raise ValueError("emulate=True needs the app's http(s):// base URL")
        return Client(NativeTransport(url, protocols, debug, timeout), url)._open()
    if scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ValueError(f"not an http(s):// or ws(s):// URL: {url!r}")
    base = url.rstrip("/")
    if emulate:
        return Client(EmulatedTransport(base, protocols, debug, None, timeout), url)._open()
    info = fetch_info(base, timeout, debug)
    ws_url = info.get("websocket")
    if emulate is False:
        if not isinstance(ws_url, str) or not ws_url:
            raise ConnectFailed(f"{base}/info advertises no native WebSocket "
                                f"(no daemon configured)")
        return Client(NativeTransport(ws_url, protocols, debug, timeout), url)._open()
    if isinstance(ws_url, str) and ws_url:
        if debug:
            debug(f"  auto: trying native WebSocket at {ws_url}")
        started = time.monotonic()
        try:
            return Client(NativeTransport(ws_url, protocols, debug, timeout), url)._open()
        except ConnectFailed as exc:
            if debug:
                debug(f"  auto: native failed after {time.monotonic() - started:.2f} s "
                      f"({exc.message}); using the emulation")
    return Client(EmulatedTransport(base, protocols, debug, info, timeout), url)._open()
