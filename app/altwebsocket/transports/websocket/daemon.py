"""The native WebSocket daemon: the same apps and storage as the SSE emulation, over RFC 6455.

``altws daemon`` (or :func:`run_daemon`) serves every app at ``ws://host:port/<app>`` with
the ``websockets`` library (asyncio). It is a thin transport over
:class:`~altwebsocket.server.AltWebSocketServer`, exactly like the HTTP endpoints. The
handshake is the authentication (the daemon made the connection and holds its socket), so the
daemon calls the server by connection id and keeps no secret:

- a client's handshake → :meth:`~AltWebSocketServer.open` (a connection row,
  ``transport='websocket'``, the handler's ``on_open``), done *before* the handshake's answer
  is sent, with the daemon recorded as the row's waker: once the client sees its socket
  open, whatever any process queues for it reaches it;
- each frame → :meth:`~AltWebSocketServer.receive` with the client's next seq (1, 2, 3…);
- its close frame → :meth:`~AltWebSocketServer.close`; a vanished client →
  :meth:`~AltWebSocketServer.disconnect` with 1006; the daemon's own closes (1009 too big,
  1008 slow reader, 1001 shutdown) → ``disconnect`` with that code.

Outgoing events take two paths, and frames leave in commit order on both:

- **In memory.** The daemon is the server's :class:`~altwebsocket.server.LocalSink`: what a
  handler running here sends to a connection held here (the echo reply, the chat history) skips
  the storage and is queued on the socket after the commit.
- **Through the storage.** Events queued by other processes (an emulated client posting through
  WSGI or CGI), broadcasts and closes are stored. The daemon binds one
  :class:`~altwebsocket.wake.WakeSocket`, records it as the waker of all its connections,
  reads the hinted ids with the event loop and sends ``events_after(cursor)``. What an
  operation of this process stored for its clients (a broadcast of a handler running here)
  is handed to it after the commit, numbered (:meth:`AltWebSocketDaemon.offer`), and sent
  without being read back. It also polls ``PRAGMA data_version`` every ``poll_interval``
  (when it moved: one read of where all its clients' queues stand, then the events of those
  behind), so a lost hint costs latency, not messages. Before in-memory events are sent,
  hints already received are served, so a broadcast and a direct send of one transaction
  reach the socket in the order the handler made them.

All database work (the handler callbacks included) runs on ONE thread, so callbacks run one at
a time and in order per connection. By default that thread is the event loop's own
(``threaded=False``): an echo round trip then costs the receive transaction and no thread hop.
With ``threaded=True`` the callbacks run in one worker thread and a slow handler or a busy
database lock does not stall pings and other sockets; both are measured in ``docs/daemon.md``.

Every ``min(heartbeat, 5)`` seconds the daemon marks its connections as seen
(``touch_waker``) so the sweep of other processes does not close them, runs the sweep itself,
and deletes the stored events its clients have received. At start it closes (1006) the native
connections a killed daemon left open. On SIGTERM or SIGINT it closes every client with 1001.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed as SocketClosed
from websockets.http11 import Request, Response
from websockets.protocol import State as SocketState
from websockets.typing import Subprotocol

from ...config import Settings
from ...exceptions import (
    AltWebSocketError,
    ConnectionClosed,
    Overloaded,
    RateLimited,
    UnknownConnection,
)
from ...protocol import messages as wire
from ...protocol.close import CloseCode
from ...protocol.origin import origin_allowed
from ...server import AltWebSocketServer, LocalSink, LocalStream, Opened
from ...storage import EVENT_PAGE
from ...storage.wake import WakeSocket, local_path
from .peer import CloseFrame, Frame, NativeClient, sendable_close

if TYPE_CHECKING:
    from ...storage.api import StoredEvent

__all__ = ["AltWebSocketDaemon", "run_daemon", "app_from_path", "handshake_origin_allowed"]

log = logging.getLogger("altwebsocket.daemon")

T = TypeVar("T")

# How long a received frame is retried while the storage answers "busy" or "unavailable"
# (the frame waits, and the socket is not read meanwhile: TCP backpressure) before the
# daemon gives up and closes with 1013.
STORAGE_PATIENCE = 30.0
Pushes = list[tuple[NativeClient, Frame]]


def app_from_path(path: str) -> str:
    """The app name of a request path: ``/chat?x=1`` → ``chat``."""
    return path.split("?", 1)[0].strip("/")


def handshake_origin_allowed(origin: str | None, host: str | None,
                             allowed: Sequence[str]) -> bool:
    """The Origin rule of :mod:`~altwebsocket.protocol.origin` for a WebSocket handshake.

    The daemon's own origin is the handshake's ``Host`` with an ``http`` or ``https`` scheme
    (the page that opens ``ws://host/`` is served from ``http://host``, or through a TLS proxy
    from ``https://host``). No ``Origin`` (not a browser) passes.
    """
    if origin is None:
        return True
    if host:
        for scheme in ("http", "https"):
            if origin_allowed(origin, f"{scheme}://{host}", allowed):
                return True
    return origin_allowed(origin, None, allowed)


def _frame(kind: int, payload: bytes) -> Frame:
    if kind == wire.TEXT:
        return payload.decode("utf-8")
    if kind == wire.BINARY:
        return payload
    obj = json.loads(payload.decode("utf-8"))
    return sendable_close(int(obj.get("code", 1000)), str(obj.get("reason", "")))


def _dead_here(address: str) -> bool:
    """Whether a waker is a socket of this host that no process listens on any more (the
    wakers of other hosts are theirs to judge: a daemon there may well be alive)."""
    path = local_path(address)
    return path is not None and not _socket_alive(path)


def _socket_alive(path: str) -> bool:
    """Whether a process still listens on the wake socket ``path`` (an empty datagram)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    probe.setblocking(False)
    try:
        probe.sendto(b"", path)
        return True
    except OSError as exc:
        return exc.errno == errno.EAGAIN  # alive, its queue is just full
    finally:
        probe.close()


class AltWebSocketDaemon(LocalSink, LocalStream):
    """Serves the apps of ``server`` over native WebSocket; the server's ``LocalSink``.

    Args:
        server: the apps and the storage (shared with the HTTP side).
        host: interface to listen on.
        port: TCP port (0 picks a free one; see :attr:`url` once started).
        threaded: run the database work and callbacks in one worker thread instead of the
            event loop's thread.
    """

    def __init__(self, server: AltWebSocketServer, host: str = "127.0.0.1", port: int = 8001,
                 threaded: bool = False) -> None:
        self.server = server
        self.settings: Settings = server.settings
        self.host = host
        self.port = port
        self.url = ""
        self.clients: dict[str, NativeClient] = {}
        self._threaded = threaded
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: WakeSocket | None = None
        self._version: int | None = None
        self._last_beat = 0.0
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._orphans_done = False
        # handshakes answered but not yet handled: id(connection) -> (when, app, opened)
        self._opening: dict[int, tuple[float, str, Opened | AltWebSocketError]] = {}
        self._last_warning = ("", 0.0)
        self._db_thread = 0  # the thread that runs the database work (offer() checks it)
        limit = self.settings.max_message
        self._max_bytes = max(4 * limit + 65536, 1 << 20)

    # --- the database thread -----------------------------------------------------------

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the database thread (inline, or the one worker)."""
        if self._pool is None:
            return fn(*args)
        assert self._loop is not None
        return await self._loop.run_in_executor(self._pool, fn, *args)

    def _dispatch(self, pushes: Pushes) -> None:
        if not pushes:
            return
        if threading.get_ident() == self._loop_thread:
            self._push_all(pushes)
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._push_all, pushes)

    @staticmethod
    def _push_all(pushes: Pushes) -> None:
        for client, frame in pushes:
            client.push(frame)

    def _flush(self, client: NativeClient) -> Pushes:
        """The stored events of ``client`` after its cursor, as frames (database thread)."""
        pushes: Pushes = []
        while True:
            events = self.server.storage.events_after(client.id, client.cursor)
            for event_id, kind, payload, _ in events:
                pushes.append((client, _frame(kind, payload)))
                client.cursor = event_id
            if len(events) < EVENT_PAGE:
                return pushes

    def _serve_hints(self) -> Pushes:
        """Read the pending wake-up hints and fetch the hinted connections' stored events."""
        assert self._wake is not None
        pushes: Pushes = []
        for conn_id in dict.fromkeys(self._wake.drain()):
            client = self.clients.get(conn_id)
            if client is not None:
                pushes.extend(self._flush(client))
        return pushes

    def _note_db_thread(self) -> None:
        self._db_thread = threading.get_ident()

    # --- LocalStream: what this process's operations queued for its clients ------------

    def offer(self, events: list[StoredEvent], own: bool = False,
              queues: Sequence[str] = ()) -> bool:
        """Take the events an operation of this process just committed for connections
        waited on by this daemon's wake socket (a broadcast: one event per client), in
        order: each is pushed as it is when it follows its client's cursor, without reading
        it back (a gap, events of elsewhere in between: that client's are read). Only on
        the database thread (the cursors are its); ``False`` elsewhere: the hint path."""
        if threading.get_ident() != self._db_thread or len(queues) != len(events):
            return False
        pushes = self._serve_hints()  # what other processes queued before, first
        clients = self.clients
        for conn_id, (event_id, kind, payload, _) in zip(queues, events):
            client = clients.get(conn_id)
            if client is None or event_id <= client.cursor:
                continue
            if event_id == client.cursor + 1:
                pushes.append((client, _frame(kind, payload)))
                client.cursor = event_id
            else:
                pushes.extend(self._flush(client))
        self._dispatch(pushes)
        return True

    # --- LocalSink ---------------------------------------------------------------------

    def owns(self, conn_id: str) -> bool:
        """Whether this daemon holds ``conn_id`` (events to it then skip the storage)."""
        return conn_id in self.clients

    def deliver(self, events: list[tuple[str, int, bytes]]) -> None:
        """Queue events just committed for connections held here (database thread).

        Hints already received (a broadcast of the same transaction, say) are served first.
        """
        pushes = self._serve_hints()
        clients = self.clients
        for conn_id, kind, payload in events:
            client = clients.get(conn_id)
            if client is not None:
                pushes.append((client, _frame(kind, payload)))
        self._dispatch(pushes)

    # --- connection life (database thread) --------------------------------------------

    def _attach(self, client: NativeClient) -> None:
        self.clients[client.id] = client
        assert self._wake is not None
        with self.server.storage.transaction() as tx:
            tx.set_waker(client.id, self._wake.address)
        self._dispatch(self._flush(client))  # what on_open queued, and anything since

    def _receive(self, client: NativeClient, data: wire.Message) -> int:
        # The hot path: seq and rate bucket in memory; no transaction unless the handler
        # needs the storage (AltWebSocketServer.receive_held).
        client.bucket = self.server.receive_held(client.app, client.id, client.protocol, data,
                                                 client.bucket)
        client.seq += 1  # counted once handled: a retry (busy storage) is the same message
        return client.seq

    async def _receive_patiently(self, client: NativeClient, data: wire.Message) -> None:
        """Store a frame, waiting out ``max_rate`` (the socket is not read meanwhile, so a
        fast sender is slowed by TCP backpressure) and a busy or failing storage for up to
        :data:`STORAGE_PATIENCE` seconds; then the error is raised."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + STORAGE_PATIENCE
        while True:
            try:
                await self._db(self._receive, client, data)
                return
            except RateLimited as exc:
                await asyncio.sleep(max(0.01, exc.retry_after))
            except Overloaded as exc:
                if loop.time() + exc.retry_after > give_up or self._stopping:
                    raise
                log.warning("connection %s: %s; retrying in %g s", client.id, exc.message,
                            exc.retry_after)
                await asyncio.sleep(exc.retry_after)

    def _finish(self, client: NativeClient) -> None:
        """Record how the socket ended: the client's close, the daemon's close, or 1006."""
        self.clients.pop(client.id, None)
        protocol = client.ws.protocol
        received, sent = protocol.close_rcvd, protocol.close_sent
        try:
            if received is not None and (sent is None or protocol.close_rcvd_then_sent):
                self.server.close(client.app, client.id, int(received.code), received.reason)
            elif sent is not None:
                self.server.disconnect(client.app, client.id, int(sent.code), sent.reason)
            else:
                self.server.disconnect(client.app, client.id, CloseCode.ABNORMAL)
        except AltWebSocketError as exc:  # the sweep of a restarted daemon will close it
            log.warning("could not record the close of %s: %s", client.id, exc)

    def _tick(self) -> None:
        """Fallback poll, and every few seconds the heartbeat and housekeeping."""
        storage = self.server.storage
        if not self._orphans_done:
            self._close_orphans()
            self._orphans_done = True
        self._forget_unhandled()
        version = storage.data_version()
        pushes = self._serve_hints()
        if version is None or version != self._version:
            self._version = version
            # where every client's queue stands, in one read for all (a statement per 250);
            # only those behind read their events
            clients = list(self.clients.values())
            last = storage.last_events([client.id for client in clients])
            for client in clients:
                if last.get(client.id, 0) > client.cursor:
                    pushes.extend(self._flush(client))
        self._dispatch(pushes)
        now = time.monotonic()
        if now - self._last_beat >= min(self.settings.heartbeat, 5.0):
            self._last_beat = now
            assert self._wake is not None
            with storage.transaction() as tx:
                tx.touch_waker(self._wake.address)
            seen = [client for client in self.clients.values()
                    if client.cursor > client.discarded]
            storage.discard_many([(client.id, client.cursor) for client in seen])
            for client in seen:  # (one transaction for all of them)
                client.discarded = client.cursor
            self.server.maybe_sweep()

    def _close_orphans(self) -> int:
        """Close (1006) the native connections whose daemon is gone (its wake socket dead)."""
        assert self._wake is not None
        orphans: list[tuple[str, str]] = []
        with self.server.storage.transaction() as tx:
            for app in self.server.handlers:
                for conn_id in tx.open_connection_ids(app):
                    record = tx.connection(conn_id)
                    if (record is not None and record.transport == "websocket"
                            and record.waker and record.waker != self._wake.address
                            and _dead_here(record.waker)):
                        orphans.append((app, conn_id))
        closed = sum(1 for app, conn_id in orphans
                     if self.server.disconnect(app, conn_id, CloseCode.ABNORMAL))
        if closed:
            log.info("closed %d connections left open by a stopped daemon", closed)
        return closed

    # --- the event loop side ----------------------------------------------------------

    def _on_wake(self) -> None:
        assert self._loop is not None and self._wake is not None
        if self._pool is None:
            try:
                self._dispatch(self._serve_hints())
            except AltWebSocketError as exc:
                log.warning("wake-up: %s (the poll will retry)", exc)
            return
        fd = self._wake.fileno()
        self._loop.remove_reader(fd)

        def job() -> None:
            try:
                self._dispatch(self._serve_hints())
            except AltWebSocketError as exc:
                log.warning("wake-up: %s (the poll will retry)", exc)
            finally:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._watch_wake)

        try:
            self._pool.submit(job)
        except RuntimeError:  # shutting down
            pass

    def _watch_wake(self) -> None:
        wake, loop = self._wake, self._loop
        if wake is not None and loop is not None and not loop.is_closed() and wake.fileno() >= 0:
            loop.add_reader(wake.fileno(), self._on_wake)

    def _warn(self, text: str) -> None:
        """Log ``text``, but the same text at most every 30 s (a failing storage would
        otherwise log once per poll)."""
        now = time.monotonic()
        if text != self._last_warning[0] or now - self._last_warning[1] >= 30.0:
            self._last_warning = (text, now)
            log.warning("%s", text)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            try:
                await self._db(self._tick)
            except AltWebSocketError as exc:
                self._warn(f"housekeeping: {exc.message} (the daemon keeps serving)")
            except Exception:  # pragma: no cover - keep the daemon alive
                log.exception("housekeeping failed")

    def _process_request(self, connection: ServerConnection, request: Request
                         ) -> Response | None:
        app = app_from_path(request.path)
        if app not in self.server.handlers:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no app named {app!r}\n")
        origin = request.headers.get("Origin")
        host = request.headers.get("Host")
        if not handshake_origin_allowed(origin, host, self.settings.allowed_origins):
            log.info("refused a handshake from origin %s", origin)
            return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed\n")
        if self._stopping:
            response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
            response.headers["Retry-After"] = "2"
            return response
        return None

    def _client_address(self, ws: ServerConnection) -> str | None:
        """The client's address (the last ``X-Forwarded-For`` entry with ``trust_proxy``)."""
        if self.settings.trust_proxy and ws.request is not None:
            forwarded = ws.request.headers.get("X-Forwarded-For", "")
            last = forwarded.split(",")[-1].strip()
            if last:
                return last[:64]
        remote = ws.remote_address
        return str(remote[0])[:64] if remote else None

    async def _process_response(self, connection: ServerConnection, request: Request,
                                response: Response) -> Response | None:
        """Open the connection while the handshake's answer is still unsent: once the client
        sees its socket open, the connection exists and the daemon is its waker, so an event
        any process queues for it from that moment on reaches it."""
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        app = app_from_path(request.path)
        offered = (connection.subprotocol,) if connection.subprotocol else ()
        origin = request.headers.get("Origin")
        try:
            opened: Opened | AltWebSocketError = await self._db(
                self._open, app, offered, origin, self._client_address(connection))
        except AltWebSocketError as exc:  # the handler closes with the matching code
            opened = exc
        self._opening[id(connection)] = (time.monotonic(), app, opened)
        return None

    def _open(self, app: str, offered: tuple[str, ...], origin: str | None,
              address: str | None) -> Opened:
        """Create the connection (``on_open`` runs) and make this daemon its waker."""
        opened = self.server.open(app, offered, origin, "websocket", address)
        assert self._wake is not None
        with self.server.storage.transaction() as tx:
            tx.set_waker(opened.id, self._wake.address)
        return opened

    def _forget_unhandled(self) -> None:
        """Close (1006) connections opened for handshakes that never reached the handler
        (the client vanished between the answer and the first frame)."""
        now = time.monotonic()
        for key, (started, app, opened) in list(self._opening.items()):
            if now - started > 10.0:
                del self._opening[key]
                if isinstance(opened, Opened):
                    self.server.disconnect(app, opened.id, CloseCode.ABNORMAL)

    def _select_subprotocol(self, connection: ServerConnection,
                            offered: Sequence[Subprotocol]) -> Subprotocol | None:
        assert connection.request is not None
        handler = self.server.handler(app_from_path(connection.request.path))
        chosen = handler.select_protocol(tuple(offered))
        return Subprotocol(chosen) if chosen else None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        app = app_from_path(ws.request.path)
        _, _, opened = self._opening.pop(id(ws))  # made by _process_response
        if isinstance(opened, AltWebSocketError):
            exc = opened
            log.warning("could not open a connection to %s: %s", app, exc.message)
            code = (CloseCode.TRY_AGAIN_LATER if isinstance(exc, (Overloaded, RateLimited))
                    else CloseCode.INTERNAL_ERROR)
            await ws.close(code, exc.message[:120])
            return
        client = NativeClient(ws, app, opened.id, self.settings.max_events_queued,
                              self._max_bytes, opened.protocol)
        client.start()
        try:
            await self._db(self._attach, client)
            async for message in ws:
                if client.closing:
                    continue  # closed by the app: the rest is dropped, as after a close
                client.hold()
                try:
                    await self._receive_patiently(client, message)
                except ConnectionClosed:
                    # Closed in the storage (by the app, the sweep, another process): its
                    # close event is stored; send it now.
                    await self._db(lambda: self._dispatch(self._flush(client)))
                except UnknownConnection:
                    client.push(CloseFrame(CloseCode.GOING_AWAY, "connection purged"))
                except Overloaded as exc:
                    client.push(CloseFrame(CloseCode.TRY_AGAIN_LATER, exc.message[:120]))
                finally:
                    await client.release()
        except SocketClosed:
            pass
        except AltWebSocketError as exc:
            log.warning("connection %s: %s", client.id, exc.message)
            if isinstance(exc, Overloaded):
                await ws.close(CloseCode.TRY_AGAIN_LATER, exc.message[:120])
            else:
                await ws.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if ws.protocol.state is not SocketState.CLOSED:
                # bounded by close_timeout
                await ws.close(CloseCode.INTERNAL_ERROR, "internal error")
            await self._db(self._finish, client)
            await client.stop()

    # --- running -----------------------------------------------------------------------

    async def serve(self, ready: Callable[[str], None] | None = None,
                    stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set (or :meth:`request_stop`, SIGTERM, SIGINT), then close
        every client with 1001 and record it."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop = stop or asyncio.Event()
        self._db_thread = self._loop_thread
        if self._threaded:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "altws-db")
            self._pool.submit(self._note_db_thread).result()
        self.server.storage.listen()  # hints from other hosts too (PostgreSQL)
        self._wake = WakeSocket(self.server.wake_dir)
        self.server.local_sink = self
        self.server.hold_stream(self._wake.address, self)  # (offer: broadcasts in memory)
        ticker: asyncio.Task[None] | None = None
        try:
            try:
                await self._db(self.server.storage.ensure_schema)
                await self._db(self._close_orphans)
                self._orphans_done = True
                self._version = await self._db(self.server.storage.data_version)
            except AltWebSocketError as exc:
                # Serve anyway (handshakes get 1013 until the storage works): a daemon that
                # exits here would be restarted into the same failure, again and again.
                log.error("storage unavailable at start: %s; serving, and retrying", exc.message)
            self._watch_wake()
            settings = self.settings
            async with serve(
                self._handle, self.host, self.port,
                process_request=self._process_request,
                process_response=self._process_response,
                select_subprotocol=self._select_subprotocol,
                max_size=settings.max_message,
                ping_interval=settings.heartbeat,
                ping_timeout=max(settings.heartbeat, 20.0),
                server_header="altws",
            ) as ws_server:
                port = self._bound_port(ws_server)
                self.url = f"ws://{self.host}:{port}/"
                ticker = asyncio.get_running_loop().create_task(self._ticker())
                if ready is not None:
                    ready(self.url)
                await self._stop.wait()
                self._stopping = True
                log.info("stopping: closing %d clients with 1001", len(self.clients))
        finally:
            if ticker is not None:
                ticker.cancel()
            if self._wake is not None:
                self.server.hold_stream(self._wake.address, None)
                if not self._loop.is_closed():
                    self._loop.remove_reader(self._wake.fileno())
                self._wake.close()
                self._wake = None
            if self.server.local_sink is self:
                self.server.local_sink = None
            if self._pool is not None:
                self._pool.submit(self.server.storage.close)
                self._pool.shutdown(wait=True)
                self._pool = None
            else:
                self.server.storage.close()

    @staticmethod
    def _bound_port(ws_server: Server) -> int:
        for sock in ws_server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("the daemon is not listening")

    def request_stop(self) -> None:
        """Ask :meth:`serve` to stop (from any thread or a signal handler)."""
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            stop.set()
        else:
            loop.call_soon_threadsafe(stop.set)


def run_daemon(settings: Settings, host: str = "127.0.0.1", port: int = 8001,
               ready: Callable[[str], None] | None = None,
               stop: threading.Event | None = None,
               threaded: bool = False) -> int:
    """Run the daemon until SIGTERM/SIGINT (main thread) or until ``stop`` is set.

    Args:
        settings: the same settings as the HTTP side (same ``data`` or ``storage``).
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
        ready: called with the ``ws://host:port/`` URL once listening.
        stop: a :class:`threading.Event` another thread sets to stop the daemon.
        threaded: run the callbacks in one worker thread (see the module docstring).

    Returns:
        0 once stopped.
    """
    server = AltWebSocketServer(settings=settings)
    daemon = AltWebSocketDaemon(server, host, port, threaded=threaded)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop_event = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop_event.set)
        if stop is not None:
            def watch() -> None:
                stop.wait()
                loop.call_soon_threadsafe(stop_event.set)

            threading.Thread(target=watch, name="altws-daemon-stop", daemon=True).start()
        await daemon.serve(ready, stop_event)

    asyncio.run(main())
    return 0
