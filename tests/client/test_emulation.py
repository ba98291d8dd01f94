"""What only the emulated transport does: resume, retries with the same seq, batching,
backoff, duplicate events (see ``docs/protocol.md``)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

import altwebsocket.client.emulation as emulation
from altwebsocket.client import connect
from altwebsocket.client.emulation import EmulatedTransport, HttpError
from altwebsocket.client.transport import Sink
from altwebsocket.protocol.sse import ServerSentEvent

from ..support import TIMEOUT, Site


def test_resumes_with_last_event_id_when_the_server_ends_the_stream(short_streams) -> None:
    lines: list[str] = []
    with connect(short_streams.base("echo"), emulate=True, debug=lines.append) as ws:
        received = []
        for number in range(6):
            ws.send(f"m{number}")
            received.append(ws.recv(TIMEOUT))
            time.sleep(0.45)
        assert received == [f"m{n}" for n in range(6)]
        with pytest.raises(TimeoutError):  # nothing delivered twice
            ws.recv(0.5)
    resumes = [line for line in lines if "Last-Event-ID:" in line]
    assert resumes, lines
    assert any("stream ended by the server" in line for line in lines)
    ids = [int(m.group(1)) for line in lines for m in [re.search(r"Last-Event-ID: (\d+)",
                                                                  line)] if m]
    assert ids == sorted(ids) and ids[0] >= 1


def test_a_lost_answer_is_retried_with_the_same_seq(live_server, monkeypatch) -> None:
    real = emulation.http_request
    failures = {"left": 2}

    def flaky(conn: Any, method: str, path: str, body: Any = None) -> Any:
        answer = real(conn, method, path, body)
        if path.endswith("/send") and failures["left"]:
            failures["left"] -= 1
            raise ConnectionResetError("injected: the answer was lost")
        return answer

    monkeypatch.setattr(emulation, "http_request", flaky)
    lines: list[str] = []
    with connect(live_server.url + "/echo", emulate=True, debug=lines.append) as ws:
        ws.send("once")
        assert ws.recv(TIMEOUT) == "once"
        ws.send("twice")
        assert ws.recv(TIMEOUT) == "twice"
        with pytest.raises(TimeoutError):  # the server delivered seq 1 once only
            ws.recv(0.5)
    first = [line for line in lines
             if re.match(r"> POST /echo/send seq=1(\.\.| |$)", line) or "reopening" in line]
    assert len(first) >= 3, lines  # seq 1 went out three times
    assert any("will resend the same seqs" in line for line in lines)


def test_backs_off_and_retries_after_503(live_server, monkeypatch) -> None:
    real = emulation.http_request
    busy = {"left": 1}

    def overloaded(conn: Any, method: str, path: str, body: Any = None) -> Any:
        if path.endswith("/send") and busy["left"]:
            busy["left"] -= 1
            raise HttpError(503, "overloaded", "busy", retry_after=0.2)
        return real(conn, method, path, body)

    monkeypatch.setattr(emulation, "http_request", overloaded)
    lines: list[str] = []
    with connect(live_server.url + "/echo", emulate=True, debug=lines.append) as ws:
        ws.send("after the storm")
        assert ws.recv(TIMEOUT) == "after the storm"
    assert "< 503 overloaded: busy" in lines


def test_queued_sends_are_batched(live_server) -> None:
    lines: list[str] = []
    with connect(live_server.url + "/echo", emulate=True, debug=lines.append) as ws:
        for number in range(200):
            ws.send(str(number))
        assert ws.flush(TIMEOUT)
        assert ws.buffered_amount == 0
        assert [ws.recv(TIMEOUT) for _ in range(200)] == [str(n) for n in range(200)]
    posts = [line for line in lines if "> POST /echo/send" in line]
    assert len(posts) < 200
    assert any("messages)" in line for line in posts)


class _Collect(Sink):
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.closes: list[Any] = []

    def on_message(self, message: Any) -> None:
        self.messages.append(message)

    def on_close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))


def test_an_event_seen_before_is_dropped() -> None:
    lines: list[str] = []
    transport = EmulatedTransport("http://127.0.0.1:1/echo", debug=lines.append)
    sink = _Collect()
    transport._sink = sink
    for event_id, data in [("1", '"a"'), ("2", '"b"'), ("1", '"a"'), ("2", '"b"'),
                           ("3", '"c"')]:
        transport._on_event(ServerSentEvent(data=data, id=event_id))
    assert sink.messages == ["a", "b", "c"]
    assert transport.last_event_id == 3
    assert "< event id=1 message: duplicate, dropped" in lines
    assert transport._on_event(ServerSentEvent(data='{"code": 1000, "reason": ""}',
                                               event="close", id="4"))
    assert sink.closes == [(1000, "")]


def test_a_stream_without_close_is_closed_1006_when_the_server_dies(data_dir: str) -> None:
    running = Site(data_dir)
    ws = connect(running.base("echo"), emulate=True)
    ws._transport.reconnect_timeout = 1.0  # type: ignore[attr-defined]
    running.stop()
    assert ws.wait_closed(TIMEOUT * 2)
    assert ws.close_code == 1006
