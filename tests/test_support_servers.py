"""The test harness's in-process server (``support.WSGIThread``) stops whatever happened to
the pipe that wakes its loop (waitress's trigger): CI once found its write end's descriptor
closed, after a test that passed, and the teardown failed with EBADF."""

from __future__ import annotations

import os
import socket
import time

import httpx

from .support import TIMEOUT, WSGIThread

NOT_OPEN = 1_000_000  # a descriptor number above any this process holds: EBADF


def hello(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except OSError:
        return True
    return False


def stopped_with_its_trigger_writing_to(number: int, as_altws_serve: bool) -> float:
    """Start a server with a client connected, point its trigger's write end at ``number``,
    stop it; the seconds ``stop`` took. The server is checked stopped, its client gone."""
    server = WSGIThread(hello, threads=2, as_altws_serve=as_altws_serve)
    port = server.httpd.effective_port  # type: ignore[union-attr]
    assert httpx.get(server.url, timeout=TIMEOUT).text == "hello"
    client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    me = client.getsockname()
    deadline = time.monotonic() + TIMEOUT  # until the server has accepted it

    def accepted() -> bool:
        return any(getattr(channel, "addr", None) == me
                   for channel in list(server.httpd._map.values()))  # type: ignore

    while not accepted():
        assert time.monotonic() < deadline, "the server did not accept the client"
        time.sleep(0.01)
    trigger = server.httpd.trigger  # type: ignore[union-attr]
    own = trigger.trigger
    trigger.trigger = number
    try:
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
        assert not server._thread.is_alive()
        assert refused(port)
        try:  # the client's connection was closed too
            assert client.recv(10) == b""
        except ConnectionResetError:
            pass
        server.stop()  # (a second stop finds it stopped)
        return took
    finally:
        client.close()
        trigger.trigger = own
        trigger.close()  # (its pipe, as the server would have closed it)


def test_it_stops_when_its_trigger_is_closed() -> None:
    for as_altws_serve in (False, True):
        assert stopped_with_its_trigger_writing_to(NOT_OPEN, as_altws_serve) < TIMEOUT / 2


def test_it_stops_when_the_number_of_its_trigger_is_another_file_s() -> None:
    """The wake-up goes into another pipe: the loop never runs the close, and ``stop``
    closes from its own thread once it has waited ``TIMEOUT`` for the loop."""
    read, write = os.pipe()
    try:
        took = stopped_with_its_trigger_writing_to(write, as_altws_serve=False)
        assert TIMEOUT <= took < 3 * TIMEOUT
        assert os.read(read, 10) == b"x"
    finally:
        os.close(read)
        os.close(write)


def test_it_stops_the_usual_way() -> None:
    server = WSGIThread(hello, threads=2)
    port = server.httpd.effective_port  # type: ignore[union-attr]
    assert httpx.get(server.url, timeout=TIMEOUT).text == "hello"
    server.stop()
    assert server.httpd.trigger._closed  # type: ignore[union-attr]
    assert not server._thread.is_alive() and refused(port)
