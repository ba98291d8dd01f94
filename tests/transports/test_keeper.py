"""Streams held without a thread each (:mod:`altwebsocket.transports.http.keeper`): under
``altws serve``'s waitress (four request threads here) a stream is started by a request's
thread and then held by the process's keeper, which beats, reads what other processes
queued, ends the response at the stream's end and lets go of a client that left."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from altwebsocket import WSGIApp
from altwebsocket.transports.http.keeper import StreamKeeper

from ..support import (
    TIMEOUT,
    WSGIThread,
    make_server,
    new,
    new_connection,
    post,
    send,
    send_body,
    stream_url,
    web_app,
)

REQUEST_THREADS = 4


class Served:
    def __init__(self, data: str, **settings: object) -> None:
        self.server = make_server(data, **settings)
        self.endpoints = WSGIApp(self.server, direct_writes=True)
        self.http = WSGIThread(self.endpoints, threads=REQUEST_THREADS, as_altws_serve=True)
        self.url = self.http.url

    @property
    def keeper(self) -> StreamKeeper:
        return self.endpoints.streams.keeper()

    def stop(self) -> None:
        self.endpoints.shutdown()
        self.http.stop()


@pytest.fixture
def served(data_dir) -> Iterator[Served]:
    running = Served(data_dir, heartbeat=0.3, stream_lifetime=30)
    try:
        yield running
    finally:
        running.stop()


class RawStream:
    """An event stream read from a plain socket in a thread (every byte as it came)."""

    def __init__(self, url: str, http10: bool = False, read: bool = True) -> None:
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if not read:  # a client that reads nothing: as little as the kernel lets it buffer
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect((host, int(port)))
        version = "1.0" if http10 else "1.1"
        self.sock.sendall(f"GET /{path} HTTP/{version}\r\nHost: {hostport}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.data = b""
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if read:
            self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                got = self.sock.recv(65536)
                if not got:
                    break
                with self._lock:
                    self.data += got
        except OSError:
            pass
        finally:
            self.closed.set()

    def wait_for(self, needle: bytes, timeout: float = TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if needle in self.data:
                    return self.data
            time.sleep(0.01)
        raise AssertionError(f"{needle!r} never came; got {self.data[-300:]!r}")

    def close(self) -> None:
        try:  # (close() alone leaves the connection up while the reader is in recv())
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _until(condition, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("the condition never held")


@contextlib.contextmanager
def one_held(data_dir: str, http10: bool = False, **settings: object
             ) -> Iterator[tuple[Served, str, str, str, RawStream]]:
    """A server, and one echo connection whose stream its keeper holds:
    ``(served, base, id, token, stream)``."""
    running = Served(data_dir, **settings)
    try:
        base = running.url + "/echo"
        conn_id, token = new_connection(base)
        stream = RawStream(stream_url(base, conn_id, token), http10=http10)
        stream.wait_for(b": altws")
        _until(lambda: running.keeper.holding == 1)
        yield running, base, conn_id, token, stream
    finally:
        running.stop()


def _released(running: Served, conn_id: str) -> None:
    """The stream of ``conn_id`` is let go of: by the keeper, the process, the storage."""
    _until(lambda: running.keeper.holding == 0 and running.endpoints.streams.active == 0,
           timeout=5.0)
    record = running.server.storage.connection(conn_id)
    assert record is not None and record.waker is None


def test_many_more_streams_than_request_threads_are_held_and_answer(served) -> None:
    base = served.url + "/echo"
    clients = 30  # more than seven times the threads: each would hold one, otherwise
    conns = [new_connection(base) for _ in range(clients)]
    streams = [RawStream(stream_url(base, conn_id, token)) for conn_id, token in conns]
    try:
        for stream in streams:
            stream.wait_for(b": altws")
        _until(lambda: served.keeper.holding == clients)
        assert served.endpoints.streams.active == clients
        for n, (conn_id, token) in enumerate(conns):  # the POSTs still find a thread
            assert send(base, conn_id, token, 1, f"m{n}").status_code == 200
        for n, stream in enumerate(streams):
            stream.wait_for(f'data: "m{n}"'.encode())
        beats = streams[0].data.count(b":\n\n")  # the keeper beats for them all
        streams[0].wait_for(b":\n\n" * (beats + 1))
        # and their connections are out of waitress's map, which its loop visits each pass
        httpd = served.http.httpd
        assert len(httpd._map) < clients // 2, len(httpd._map)
    finally:
        for stream in streams:
            stream.close()


def test_a_held_stream_ends_its_chunked_response_and_the_connection(data_dir) -> None:
    with one_held(data_dir, heartbeat=0.2, stream_lifetime=1.0) as held:
        running, base, conn_id, token, stream = held
        assert stream.closed.wait(TIMEOUT), "the server did not close the connection"
        head, _, body = stream.data.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert body.endswith(b"0\r\n\r\n")  # the response ended properly, then the socket
        assert body.count(b":\n\n") >= 3  # beats about every 0.2 s for 1 s
        _released(running, conn_id)
        again = RawStream(stream_url(base, conn_id, token))  # the client resumes
        again.wait_for(b": altws")
        again.close()


def test_an_http10_client_gets_a_stream_that_ends_with_the_connection(data_dir) -> None:
    with one_held(data_dir, http10=True, heartbeat=0.2, stream_lifetime=0.6) as held:
        running, base, conn_id, token, stream = held  # an HTTP/1.0 stream is held too
        assert send(base, conn_id, token, 1, "hi").status_code == 200
        stream.wait_for(b'data: "hi"')
        assert stream.closed.wait(TIMEOUT)
        head, _, body = stream.data.partition(b"\r\n\r\n")
        assert b"chunked" not in head.lower() and body.startswith(b"retry:")


def test_a_client_that_leaves_frees_its_stream_before_the_next_beat(data_dir) -> None:
    with one_held(data_dir, heartbeat=30.0, stream_lifetime=60) as held:
        running, _, conn_id, _, stream = held
        stream.close()  # no write would find out for 30 s: the channel tells the stream
        _released(running, conn_id)


def test_what_another_process_queues_reaches_the_held_streams(served) -> None:
    """A chat message posted through another server of the same storage (as a CGI request
    or a second worker would): the held streams hear of it by their wake sockets, and the
    keeper's workers read it for them."""
    base = served.url + "/chat"
    members = [new_connection(base) for _ in range(6)]
    streams = [RawStream(stream_url(base, conn_id, token)) for conn_id, token in members]
    try:
        for stream in streams:
            stream.wait_for(b": altws")
        _until(lambda: served.keeper.holding == len(members))
        other = make_server(served.server.settings.data)
        assert other is not served.server
        app = web_app(other)
        sender = new(app, "chat")
        post(app, "/chat/send", send_body(sender, 1, "from elsewhere"))
        for stream in streams:
            stream.wait_for(b"from elsewhere")
    finally:
        for stream in streams:
            stream.close()


def test_a_stopping_server_ends_its_held_streams_at_once(data_dir) -> None:
    running = Served(data_dir, heartbeat=30.0, stream_lifetime=60)
    stopped = False
    try:
        base = running.url + "/echo"
        streams = [RawStream(stream_url(base, *new_connection(base))) for _ in range(5)]
        for stream in streams:
            stream.wait_for(b": altws")
        _until(lambda: running.keeper.holding == 5)
        started = time.monotonic()
        running.endpoints.shutdown()
        assert running.endpoints.streams.active == 0
        for stream in streams:
            assert stream.closed.wait(TIMEOUT)
            assert stream.data.endswith(b"0\r\n\r\n")
        assert time.monotonic() - started < 5.0
        running.http.stop()
        stopped = True
    finally:
        if not stopped:
            running.stop()


def test_a_stream_that_outlives_its_http_server_still_closes_its_connection(
        data_dir, caplog) -> None:
    """The HTTP server closed first (its main loop over, its trigger's pipe closed): the
    keeper closes what it holds itself, with no write into that closed pipe."""
    with one_held(data_dir, heartbeat=30.0, stream_lifetime=60) as held:
        running, _, conn_id, _, stream = held
        running.http.stop()
        assert not stream.closed.is_set()  # (out of waitress's map: not closed with it)
        with caplog.at_level("DEBUG", logger="altwebsocket"):
            running.endpoints.shutdown()
            assert stream.closed.wait(TIMEOUT), "the held connection was left open"
            _released(running, conn_id)
        assert not [r for r in caplog.records if r.levelno >= 40], caplog.text


def test_a_client_that_reads_nothing_ends_its_stream_rather_than_block_the_writers(
        data_dir) -> None:
    """Past a few MB unread (here 1 MB: half of a lowered waitress high watermark) a held
    stream's writes fail as if its client had gone: the POSTs that write its echoes, and the
    keeper, go on; the client resumes on a new stream and gets every message, in order."""
    running = Served(data_dir, heartbeat=30.0, stream_lifetime=60)
    try:
        running.http.httpd.adj.outbuf_high_watermark = 2 * 1024 * 1024  # writers block past it
        base = running.url + "/echo"
        conn_id, token = new_connection(base)
        stalled = RawStream(stream_url(base, conn_id, token), read=False)
        _until(lambda: running.keeper.holding == 1)
        messages = 16
        big = "x" * (512 * 1024)  # 8 MB in all: past the buffer, the socket's and the kernel's
        for n in range(messages):
            started = time.monotonic()
            assert send(base, conn_id, token, n + 1, f"{n}:{big}").status_code == 200
            assert time.monotonic() - started < TIMEOUT
        _until(lambda: running.keeper.holding == 0 and running.endpoints.streams.active == 0)
        stalled.close()
        again = RawStream(stream_url(base, conn_id, token) + "&lastEventId=0")
        data = again.wait_for(f"id: {messages}\n".encode())
        got = [int(line.split(b'"')[1].split(b":")[0]) for line in data.split(b"\n")
               if line.startswith(b"data: ")]
        assert got[:messages] == list(range(messages))
        again.close()
    finally:
        running.stop()


def test_what_a_slow_reader_leaves_buffered_is_sent_when_it_reads(data_dir) -> None:
    """The keeper sends a held stream's buffered output when the socket takes it — not at
    the next write (a heartbeat 30 s away here)."""
    with one_held(data_dir, heartbeat=30.0, stream_lifetime=60) as held:
        running, base, conn_id, token, _ = held
        slow = RawStream(stream_url(base, conn_id, token) + "&lastEventId=0", read=False)
        _until(lambda: running.keeper.holding == 2)
        big = "y" * (256 * 1024)
        for n in range(24):  # 6 MB: the sockets hold part, the rest (< SLOW_READER) is buffered
            assert send(base, conn_id, token, n + 1, f"{n}:{big}").status_code == 200
        time.sleep(0.3)
        slow._thread.start()  # now it reads
        data = slow.wait_for(b"id: 24\n", timeout=10.0)
        got = [int(line.split(b'"')[1].split(b":")[0]) for line in data.split(b"\n")
               if line.startswith(b"data: ")]
        assert got == list(range(24))
        slow.close()
