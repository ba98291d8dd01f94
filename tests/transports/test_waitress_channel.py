"""``altws serve``'s waitress channel (:mod:`altwebsocket.transports.http.waitress_channel`):
a write from a request's thread goes straight to the socket, never through the buffer that
waitress's main loop watches (which made it spin while a broadcast was written: seconds of
delay at 1,000 streams); what a slow reader does not take is buffered and arrives whole, in
order."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import waitress
from waitress.buffers import OverflowableBuffer

from altwebsocket.transports.http.waitress_channel import DirectChannel

from ..support import TIMEOUT

CHUNK = 64 * 1024


def _chunk(number: int, size: int) -> bytes:
    head = b"%08d:" % number
    return head + bytes([65 + number % 26]) * (size - len(head))


def _app(environ, start_response) -> Iterator[bytes]:
    if environ["QUERY_STRING"] == "answer":  # an answer such as a POST's: a known length
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", "11")])
        return iter([b'{"ok":true}'])
    count, size = (int(part) for part in environ["QUERY_STRING"].split(","))
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for number in range(count):  # written from this thread, as a stream's writes are
        write(_chunk(number, size))
    return iter([])


def _serving(direct: bool) -> Iterator[tuple[bool, int]]:
    httpd = waitress.create_server(_app, host="127.0.0.1", port=0, threads=2,
                                   asyncore_use_poll=True)
    if direct:
        httpd.channel_class = DirectChannel
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    try:
        yield direct, int(httpd.effective_port)
    finally:
        httpd.close()
        thread.join(TIMEOUT)


@pytest.fixture(params=[DirectChannel, "waitress's own"], ids=["direct", "plain"])
def served(request):
    yield from _serving(request.param is DirectChannel)


@pytest.fixture
def direct_served():
    yield from _serving(True)


def _get(port: int, query: str, wait: float = 0.0) -> bytes:
    """The decoded body of ``GET /?query`` (chunked), read after ``wait`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a small reader
        sock.sendall(f"GET /?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     .encode())
        time.sleep(wait)
        data = bytearray()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            got = sock.recv(1 << 20)
            if not got:
                break
            data += got
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert b"transfer-encoding: chunked" in head.lower()
    out = bytearray()
    while True:  # de-chunk
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out)
        out += body[:size]
        body = body[size + 2:]


def test_a_reading_client_gets_every_write_without_the_buffer(served, monkeypatch) -> None:
    direct, port = served
    appended = []
    original = OverflowableBuffer.append
    monkeypatch.setattr(OverflowableBuffer, "append",
                        lambda self, data: (appended.append(len(data)), original(self, data))[1])
    body = _get(port, "200,100")
    assert body == b"".join(_chunk(n, 100) for n in range(200))
    if direct:  # nothing went through the buffer the main loop watches
        assert len(appended) <= 2, appended
    else:  # (the test would see it: waitress's own channel buffers every write)
        assert len(appended) >= 200


def test_what_a_slow_reader_does_not_take_is_buffered_and_arrives_in_order(
        served, monkeypatch) -> None:
    _, port = served
    appended = []
    original = OverflowableBuffer.append
    monkeypatch.setattr(OverflowableBuffer, "append",
                        lambda self, data: (appended.append(len(data)), original(self, data))[1])
    body = _get(port, f"128,{CHUNK}", wait=0.5)  # 8 MB, none read for half a second
    assert len(body) == 128 * CHUNK
    assert body == b"".join(_chunk(n, CHUNK) for n in range(128))
    assert appended  # the socket could not take it all: the rest went through the buffer


def test_an_answer_goes_out_in_one_send_with_its_head(direct_served, monkeypatch) -> None:
    """waitress sends a response's head and its body in two sends: two packets, and two
    wake-ups of the client's network code for every answer. Ours go in one. (waitress's own
    channel is not checked: its main loop sends what the request's thread has buffered so
    far, one send or two depending on when it wakes.)"""
    _, port = direct_served
    sent: list[bytes] = []
    original = socket.socket.send
    monkeypatch.setattr(socket.socket, "send",
                        lambda self, data, *flags: (sent.append(bytes(data)),
                                                    original(self, data, *flags))[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        for _ in range(3):  # (one connection: each answer is its own)
            sent.clear()
            sock.sendall(b"GET /?answer HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b'{"ok":true}'):
                got = sock.recv(65536)
                assert got, data
                data += got
            assert data.startswith(b"HTTP/1.1 200")
            assert len(sent) == 1 and sent[0].startswith(b"HTTP/1.1 200 OK\r\n") and \
                sent[0].endswith(b'\r\n\r\n{"ok":true}'), sent
