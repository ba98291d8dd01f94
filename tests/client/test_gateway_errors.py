"""The emulated client rides over what a web server says when the process behind it dies
(Apache answers 500 when a CGI process is killed mid-request; proxies answer 502/504)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from altwebsocket import AltWebSocketServer, WSGIApp
from altwebsocket.client import connect
from altwebsocket.config import Settings

from ..support import TIMEOUT, WSGIThread


class FailingSends:
    """A WSGI middleware: the first ``failures`` POSTs to /send get a bare HTML 500/502,
    as from Apache or a proxy, after the server handled them or before."""

    def __init__(self, app: Any, statuses: list) -> None:
        self.app = app
        self.statuses = statuses
        self.seen = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"].endswith("/send") and self.statuses:
            status = self.statuses.pop(0)
            self.seen += 1
            if status == 500:  # handled, then the answer was lost: the retry must not repeat it
                body = self.app(environ, lambda *a: None)
                b"".join(body)
            start_response(f"{status} Error", [("Content-Type", "text/html")])
            return [b"<html>Internal Server Error</html>"]
        return self.app(environ, start_response)


@pytest.fixture
def flaky(data_dir) -> Iterator[Any]:
    server = AltWebSocketServer(settings=Settings(data=data_dir, heartbeat=1))
    endpoints = WSGIApp(server)
    middleware = FailingSends(endpoints, [500, 502])
    httpd = WSGIThread(middleware, threads=8)
    try:
        yield middleware, httpd.url
    finally:
        endpoints.shutdown()
        httpd.stop()


def test_500_and_502_on_send_are_retried_and_delivered_once(flaky) -> None:
    middleware, url = flaky
    with connect(url + "/echo", emulate=True, timeout=TIMEOUT) as ws:
        ws.send("once")
        assert ws.recv(timeout=3 * TIMEOUT) == "once"
        ws.send("after")
        assert ws.recv(timeout=3 * TIMEOUT) == "after"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # "once" was handled before the 500, and not again
    assert middleware.seen == 2
