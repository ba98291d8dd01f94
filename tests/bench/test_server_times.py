"""The lab's ``altws serve`` times its own requests (``GET /_lab/times``): which routes,
what the summary says, that it starts again on ``?reset=1``, and the report's section."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from benchmarks.local import format_server_times
from benchmarks.servers import LAB_FETCH, LAB_TIMES, RouteTimes, lab_site, timed_route


def _call(app: Any, method: str, path: str, body: bytes = b"", query: str = ""
          ) -> tuple[str, bytes]:
    status: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    out = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], out


def test_the_timed_routes() -> None:
    assert timed_route("POST", "/_session/send") == "S/send"
    assert timed_route("POST", "/echo/send") == "B/send"
    assert timed_route("POST", LAB_FETCH) == "trivial route"
    for method, path in (("GET", "/_session/"), ("POST", "/_session/new"),
                         ("POST", "/echo/close"), ("GET", "/echo/send")):
        assert timed_route(method, path) is None, (method, path)


def test_lab_site_times_the_sends_and_the_trivial_route_and_starts_again() -> None:
    seen: list[str] = []

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/_session/send":
            time.sleep(0.005)  # the send's own work, on the wall clock only
        start_response("200 OK", [])
        return [b"{}"]

    times = RouteTimes()
    app = lab_site(inner, times)
    for _ in range(3):
        assert _call(app, "POST", "/_session/send", b"{}") == ("200 OK", b"{}")
    assert _call(app, "POST", LAB_FETCH, b"abcd") == ("200 OK", b"abcd")  # (not the site's)
    assert _call(app, "GET", "/_session/") == ("200 OK", b"{}")  # passed on, not timed
    assert seen == ["/_session/send"] * 3 + ["/_session/"]
    status, body = _call(app, "GET", LAB_TIMES, query="reset=1")
    summary = json.loads(body)
    assert status == "200 OK" and set(summary) == {"S/send", "trivial route"}
    send = summary["S/send"]
    assert send["count"] == 3 and send["wall_us"]["median"] >= 5000
    assert send["cpu_us"]["median"] < send["wall_us"]["median"]  # asleep: no CPU
    assert summary["trivial route"]["count"] == 1
    assert json.loads(_call(app, "GET", LAB_TIMES)[1]) == {}  # started again


def test_route_times_keep_the_latest() -> None:
    times = RouteTimes()
    times.keep = 10
    for n in range(25):
        times.record("S/send", n / 1e6, 0.0)
    row = times.summary()["S/send"]
    assert row["count"] == 10 and row["wall_us"]["median"] == 19.5  # 15..24: the latest


def test_the_report_section() -> None:
    assert format_server_times({}) == []
    lines = format_server_times({
        "S/send": {"count": 2000, "wall_us": {"median": 452.0, "p90": 610.0},
                   "cpu_us": {"median": 430.0, "p90": 560.0}},
        "trivial route": {"count": 1000, "wall_us": {"median": 8.0, "p90": 12.0},
                          "cpu_us": {"median": 7.0, "p90": 11.0}}})
    text = "\n".join(lines)
    assert text.startswith("The server's own time per request")
    assert "S/send, a shared session's send" in text and "B/send" not in text
    assert "2,000        452 / 610" in text and "the trivial route, POST /_lab/fetch" in text
