"""The native transport: RFC 6455 WebSocket through ``websockets.sync.client``.

A reader thread turns frames into messages for the client. With a debug callback, the
``websockets`` library's own debug log is routed to it: the handshake request and response
with their headers (``> GET /echo HTTP/1.1``, ``< HTTP/1.1 101 …``, one line per header) and
every frame with its opcode and length (``> TEXT 'hi' [2 bytes]``,
``< CLOSE 1000 (OK) bye [5 bytes]``).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import socket
import threading
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from ..protocol.close import CloseCode
from .errors import Closed, ConnectFailed
from .transport import Debug, Message, Sink, Transport

__all__ = ["NativeTransport"]

_ids = itertools.count(1)
# websockets 17 warns unless a connection that is not a context manager says legacy=True.
# (Any: mypy checks a **dict's value type against every keyword connect() takes.)
_LEGACY: dict[str, Any] = (
    {"legacy": True} if "legacy" in inspect.signature(ws_connect).parameters else {})


class _DebugHandler(logging.Handler):
    """Forward log records to a debug callback, one line each."""

    def __init__(self, debug: Any) -> None:
        super().__init__(logging.DEBUG)
        self._debug = debug

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._debug(record.getMessage())
        except Exception:  # a debug sink must never break the connection
            self.handleError(record)


def _debug_logger(debug: Debug) -> logging.Logger | None:
    if debug is None:
        return None
    logger = logging.getLogger(f"altwebsocket.client.native.{next(_ids)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers[:] = [_DebugHandler(debug)]
    return logger


class NativeTransport(Transport):
    """A native WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    Args:
        url: the app's WebSocket URL, e.g. ``ws://127.0.0.1:8001/echo``.
        protocols: subprotocols offered, in order of preference.
        debug: receives the handshake headers and frames, one line each.
        timeout: seconds for the opening and for the closing handshake.
    """

    name = "native"

    def __init__(self, url: str, protocols: tuple[str, ...] = (), debug: Debug = None,
                 timeout: float = 10.0) -> None:
        self.url = url
        self.protocols = tuple(protocols)
        self.debug = debug
        self.timeout = timeout
        self.protocol = ""
        self._ws: ClientConnection | None = None
        self._logger = _debug_logger(debug)

    def open(self, sink: Sink) -> None:
        """The opening handshake; then a reader thread delivers messages to ``sink``."""
        try:
            ws = ws_connect(
                self.url,
                # websockets types them as its Subprotocol, a NewType of str
                subprotocols=list(self.protocols) or None,  # type: ignore[arg-type]
                open_timeout=self.timeout,
                close_timeout=self.timeout,
                max_size=None,
                compression=None,
                logger=self._logger,
                **_LEGACY,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ConnectFailed(f"the server refused the WebSocket handshake: HTTP {status}",
                                status) from None
        except InvalidURI as exc:
            raise ConnectFailed(f"not a WebSocket URL: {exc}") from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            text = "connection refused" if isinstance(exc, ConnectionRefusedError) else \
                (str(exc) or type(exc).__name__)
            raise ConnectFailed(f"cannot open a WebSocket to {self.url}: {text}") from None
        self.protocol = ws.subprotocol or ""
        if self.protocols and not self.protocol:
            ws.close(1002, "no subprotocol")
            raise ConnectFailed("the server chose none of the offered subprotocols")
        self._ws = ws
        threading.Thread(target=self._read_loop, args=(sink,), name="altws-native-reader",
                         daemon=True).start()

    def _read_loop(self, sink: Sink) -> None:
        assert self._ws is not None
        ws = self._ws
        try:
            for message in ws:
                sink.on_message(message)
        except ConnectionClosed:
            pass
        except Exception as exc:  # any failure of the library: report the connection lost
            if self.debug:
                self.debug(f"! reader failed: {exc!r}")
        received = ws.protocol.close_rcvd
        if received is not None:
            sink.on_close(int(received.code), received.reason)
        else:
            sink.on_close(CloseCode.ABNORMAL, "")

    def send(self, message: Message) -> None:
        """Write one frame: text for ``str``, binary for ``bytes``."""
        assert self._ws is not None
        try:
            self._ws.send(message)
        except ConnectionClosed:
            raise Closed(CloseCode.ABNORMAL, "the connection is closed") from None

    def close(self, code: int | None, reason: str) -> None:
        """The closing handshake (``code=None``: an empty close frame, seen as 1005)."""
        if self._ws is not None:
            # websockets sends a close frame with no status when the code is None.
            self._ws.close(code, reason)  # type: ignore[arg-type]

    def flush(self, timeout: float | None) -> bool:
        """Frames are written by ``send`` itself: nothing is left to flush."""
        return True

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        if self._ws is not None:
            try:
                self._ws.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
