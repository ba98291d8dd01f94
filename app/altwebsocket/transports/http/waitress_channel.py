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

The channel also lets a response outlive its request's thread (``environ["altws.detach"]``,
:class:`DetachingTask`): an event stream writes its headers and first chunk, hands itself to
the process's :class:`~.keeper.StreamKeeper` and frees the thread, so a held stream costs no
thread of waitress's pool. While detached the channel reads nothing but the end of the
connection (a client of an event stream sends nothing more), and tells the stream when the
client goes; the keeper ends the response, and the connection is then closed.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.task import WSGITask

from .wsgi import DETACH

__all__ = ["DirectChannel", "DetachingTask", "create_server", "REQUEST_THREADS"]

SLOW_READER = 4 * 1024 * 1024
"""Bytes the client of a detached response (a held stream) may leave unread in the buffer;
past them the write fails as if the client had gone (the stream ends; the client resumes
with ``Last-Event-ID``, nothing is lost) instead of blocking the writing thread — a keeper
worker or the fan-out thread, which write for other streams too — until the client reads
(waitress blocks a writer past ``outbuf_high_watermark``, 16 MB)."""

REQUEST_THREADS = 32
"""waitress threads of ``altws serve``: for requests (POSTs, the start of a stream), not for
the streams it holds, which its keeper holds (:mod:`.keeper`)."""


def create_server(app: Any, host: str, port: int, connections: int,
                  channel_timeout: int = 120, threads: int = REQUEST_THREADS,
                  ident: str = "altws") -> Any:
    """waitress as ``altws serve`` runs it: :class:`DirectChannel` (with detached streams),
    ``threads`` for the requests, up to ``connections`` connections at once."""
    import waitress

    httpd = waitress.create_server(
        app,
        host=host,
        port=port,
        # select() cannot watch a descriptor above 1023, which a few hundred streams reach
        asyncore_use_poll=True,
        threads=threads,
        connection_limit=connections,
        channel_timeout=channel_timeout,
        ident=ident,
        clear_untrusted_proxy_headers=True,
    )
    httpd.channel_class = DirectChannel  # writes sent at once; streams held by the keeper
    return httpd


def _in_main_loop(channel: DirectChannel, thunk: Callable[[], None]) -> None:
    """Run ``thunk`` in waitress's thread (its trigger wakes the main loop) — or here, once
    the server has closed: its loop is over, and the trigger's pipe is closed with it (a
    write to it fails, or, its descriptor's number reused, writes into another file)."""
    trigger = channel.server.trigger
    if not trigger._closed:
        try:
            trigger.pull_trigger(thunk)
            return
        except OSError:  # (closed just now)
            pass
    thunk()


class DetachedResponse:
    """A response that goes on after its request's thread returned (:meth:`DetachingTask.
    detach`), and its connection, which waitress's main loop then leaves alone (it would
    otherwise visit it on every pass: at 3,000 held streams, an emulated echo took 3.5 ms
    instead of 0.5). Its holder (:class:`~.keeper.StreamKeeper`) watches :attr:`fd` in
    its own selector: :meth:`read` when it is readable, :meth:`flush` when it is writable
    while output is buffered (:attr:`on_buffered` is called when a write leaves some),
    :meth:`close` once :meth:`finish` ended the response and nothing is left to send."""

    def __init__(self, task: DetachingTask, gone: Callable[[], None]) -> None:
        self._task = task
        self.channel: DirectChannel = task.channel
        self.fd: int = self.channel.socket.fileno()
        self.gone = gone  # called once the client is gone
        self.on_buffered: Callable[[], None] | None = None  # set by the holder
        channel = self.channel
        channel.detached = self
        # out of waitress's map, in its own thread (its loop iterates the map)
        _in_main_loop(channel, self._leave_main_loop)

    def _leave_main_loop(self) -> None:
        if self.channel.socket is not None:
            self.channel.del_channel()

    def read(self) -> bool:
        """Read what came (nothing may follow the request of an event stream: dropped);
        ``False`` when the client is gone (the holder then stops watching :attr:`fd` and
        calls :meth:`close`)."""
        sock = self.channel.socket
        if sock is None:
            return False
        try:
            return bool(sock.recv(65536))
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    @property
    def buffered(self) -> bool:
        """Output waits in the channel's buffer (the client reads slower than we write)."""
        return bool(self.channel.total_outbufs_len) and self.channel.socket is not None

    def flush(self) -> bool:
        """Send what the socket takes of the buffered output; ``False`` if the connection
        failed (the holder then closes it)."""
        channel = self.channel
        with channel.outbuf_lock:
            if channel.socket is None:
                return False
            if channel.total_outbufs_len:
                _, failed = channel._flush_exception(channel._flush_some, do_close=False)
                return not failed
        return True

    def finish(self) -> None:
        """End the response (from any thread): its last chunk, if chunked; the holder then
        closes the connection once the buffer is empty."""
        channel = self.channel
        self.gone = _nothing  # (it ends because the stream did)
        try:
            if self._task.chunked_response and channel.connected:
                channel.write_soon(b"0\r\n\r\n")  # (not task.write: it would chunk it)
        except Exception:  # the client is gone, or too slow: nothing to end
            pass

    def close(self) -> None:
        """Close the connection, once the holder stopped watching :attr:`fd` (in waitress's
        thread: the channel may still be in its map, which only that thread may change);
        :attr:`gone` is called if the response had not ended."""
        _in_main_loop(self.channel, self.channel.handle_close)


class DetachingTask(WSGITask):  # type: ignore[misc]
    """waitress's WSGI task, whose application may keep the response going after the
    request's thread returns (:meth:`detach`)."""

    detached = False

    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        environ[DETACH] = self.detach
        return environ

    def detach(self, gone: Callable[[], None]) -> DetachedResponse:
        """Called by the application, in the request's thread, before its body iterator
        ends: the response goes on (written from other threads), ``gone`` is called when
        the client disconnects; the connection is the returned holder's to watch, end and
        close (:class:`DetachedResponse`)."""
        self.detached = True
        return DetachedResponse(self, gone)

    def write(self, data: bytes) -> None:
        """waitress's, but the response's head goes out with its first bytes in one send:
        waitress sends them apart, two packets and two wake-ups of the client's network
        code for every answer (docs/performance.md)."""
        channel = self.channel
        if self.wrote_header or not self.complete or not data or not self.has_body or \
                channel.gathered is not None:
            return super().write(data)  # type: ignore[no-any-return]
        gathered: list[bytes] = []
        channel.gathered = gathered
        try:
            super().write(data)
        finally:
            channel.gathered = None
        if gathered:
            channel.write_soon(b"".join(gathered))
        return None

    def service(self) -> None:  # (waitress's, but a detached response is not finished)
        try:
            self.start()
            self.execute()
            if self.detached:  # (an HTTP/1.0 client's connection closes when it ends)
                self.close_on_finish = False
            else:
                self.finish()
        except OSError:
            self.close_on_finish = True
            if self.channel.adj.log_socket_errors:
                raise


class DirectChannel(HTTPChannel):  # type: ignore[misc]  # (waitress has no type hints)
    """waitress's channel, but :meth:`write_soon` sends what it can at once, and a
    response may be detached from its request's thread (module doc)."""

    task_class = DetachingTask
    detached: DetachedResponse | None = None  # set while a response is detached
    gathered: list[bytes] | None = None  # while set, writes are kept here (DetachingTask.write)

    def readable(self) -> bool:  # (a detached connection is its holder's to watch)
        return self.detached is None and bool(super().readable())

    def writable(self) -> bool:
        return self.detached is None and bool(super().writable())

    def received(self, data: bytes) -> bool:
        if self.detached is not None:  # no request may follow a detached response's
            return True
        return bool(super().received(data))

    def handle_close(self) -> None:
        detached = self.detached
        super().handle_close()
        if detached is not None:
            gone, detached.gone = detached.gone, _nothing
            try:
                gone()
            except Exception:  # (the stream ends at its next write anyway)
                pass

    def write_soon(self, data: Any) -> int:
        if self.gathered is not None:
            self.gathered.append(data)
            return len(data)
        detached = self.detached
        if detached is None:
            return self._write_soon(data)
        if self.total_outbufs_len > min(SLOW_READER, self.adj.outbuf_high_watermark // 2):
            raise ClientDisconnected("the client reads too slowly: its stream ends")
        written = self._write_soon(data)
        if self.total_outbufs_len and detached.on_buffered is not None:
            detached.on_buffered()  # its holder sends the rest when the socket takes it
        return written

    def _write_soon(self, data: Any) -> int:
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


def _nothing() -> None:
    pass
