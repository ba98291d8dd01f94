"""Reliability of the emulation (EventSource + POST) in a real browser: batching, retries
with the same seq, stream re-creation after a 503, duplicate event ids, a server that keeps
ending the stream — the app sees one continuous socket and no message is lost or doubled.

These are version 1 (``share: false``: one stream per socket, the routes they intercept are
``B/send`` and ``B/?id=…``); the same properties of the shared session (version 2) are in
test_sharing.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..support import Site
from .conftest import open_page


def test_sends_queued_during_a_post_go_in_one_batch(page, altws):
    posts: list[dict[str, Any]] = []
    page.on("request", lambda r: posts.append(json.loads(r.post_data or "{}"))
            if r.url.endswith("/echo/send") else None)
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: false });
      const got = [];
      ws.onmessage = (e) => got.push(e.data);
      await H.opened(ws);
      ws.send("m0");                                   // goes out alone…
      await new Promise((r) => setTimeout(r, 0));
      for (let i = 1; i < 50; i++) ws.send("m" + i);   // …these queue while it is in flight
      await H.until(() => got.length >= 50);
      ws.close();
      await H.closed(ws);
      return got;
    }""")
    assert result == [f"m{i}" for i in range(50)]
    assert posts[0]["seq"] == 1 and posts[0]["data"] == "m0"
    assert len(posts) == 2
    assert [m["seq"] for m in posts[1]["messages"]] == list(range(2, 51))
    assert [m["data"] for m in posts[1]["messages"]] == [f"m{i}" for i in range(1, 50)]


def test_lost_post_responses_are_retried_and_delivered_once(page, altws):
    seen: list[list[int]] = []

    def lose_every_other_answer(route):  # type: ignore[no-untyped-def]
        body = json.loads(route.request.post_data or "{}")
        seqs = [m["seq"] for m in body.get("messages", [body])]
        seen.append(seqs)
        response = route.fetch()  # the server gets and stores the messages…
        if len(seen) % 2:
            route.abort("connectionreset")  # …but the browser never hears the answer
        else:
            route.fulfill(response=response)

    page.route("**/echo/send", lose_every_other_answer)
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: false });
      const log = H.record(ws);
      await H.opened(ws);
      for (let i = 0; i < 20; i++) {
        ws.send("r" + i);
        if (i % 5 === 0) await new Promise((r) => setTimeout(r, 30));
      }
      await H.until(() => log.filter((e) => e.type === "message").length >= 20
                          && ws.bufferedAmount === 0);
      await new Promise((r) => setTimeout(r, 300));  // would a duplicate show up?
      ws.close();
      await H.closed(ws);
      return log.map((e) => e.type === "message" ? e.data : e.type);
    }""")
    assert result == ["open"] + [f"r{i}" for i in range(20)] + ["close"]
    # the same seqs went out again after each lost answer
    assert any(a[0] == b[0] for a, b in zip(seen, seen[1:]))


def test_stream_503_is_retried_without_the_app_noticing(page, altws):
    hits = {"stream": 0}

    def busy_twice(route):  # type: ignore[no-untyped-def]
        hits["stream"] += 1
        if hits["stream"] <= 3:
            route.fulfill(status=503,
                          headers={"Retry-After": "0", "Content-Type": "application/json"},
                          body='{"error": "overloaded", "message": "busy"}')
        else:
            route.continue_()

    page.route("**/echo/?id=*", busy_twice)
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: false });
      const log = H.record(ws);
      await H.opened(ws);
      ws.send("after 503");
      await H.until(() => log.length >= 2);
      ws.close(1000);
      await H.closed(ws);
      return log.map((e) => e.type === "message" ? e.data : e.type === "close" ? e.code : e.type);
    }""")
    assert result == ["open", "after 503", 1000]
    assert hits["stream"] >= 4


def test_gives_up_with_error_and_1006_when_the_stream_stays_down(page, altws):
    page.route("**/echo/?id=*", lambda route: route.fulfill(
        status=503, headers={"Retry-After": "0"}, body="{}"))
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [],
                                  { reconnectTimeout: 1500, share: false });
      const log = H.record(ws);
      await H.closed(ws);
      return log.map((e) => [e.type, e.code ?? null, e.wasClean ?? null]);
    }""")
    assert result == [["error", None, None], ["close", 1006, False]]


def test_duplicate_event_ids_are_dropped_and_close_event_ends_it(page, altws):
    bodies = [
        'retry: 50\n\nid: 1\ndata: "a"\n\nid: 1\ndata: "a"\n\n'
        'id: 2\nevent: binary\ndata: "AP8="\n\n',
        'retry: 50\n\nid: 2\nevent: binary\ndata: "AP8="\n\nid: 3\ndata: "c"\n\n'
        'id: 4\nevent: close\ndata: {"code": 4001, "reason": "over"}\n\n',
    ]
    asked: list[str] = []  # stream requests seen

    def scripted(route):  # type: ignore[no-untyped-def]
        asked.append(route.request.url)
        body = bodies[min(len(asked), len(bodies)) - 1] if len(asked) <= len(bodies) else ""
        route.fulfill(status=200 if body else 204, body=body,
                      headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})

    page.route("**/echo/?id=*", scripted)
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: false });
      ws.binaryType = "arraybuffer";
      const log = H.record(ws);
      await H.closed(ws);
      await new Promise((r) => setTimeout(r, 300));
      const out = [];
      for (const e of log) {
        out.push(e.type === "message" ? (e.kind === "string" ? e.data : await H.bytes(e.data))
                 : e.type === "close" ? [e.code, e.reason, e.wasClean] : e.type);
      }
      return out;
    }""")
    assert result == ["open", "a", [0, 255], "c", [4001, "over", True]]
    # resumed once (Chromium adds Last-Event-ID below what routing sees), none after the close
    assert len(asked) == 2


def test_streams_cut_by_the_server_lose_and_double_nothing(context, short_streams):
    page = open_page(context, short_streams.url)
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/echo/?id=" in r.url else None)
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: false });
      const log = H.record(ws);
      await H.opened(ws);
      for (let i = 0; i < 60; i++) {          // about 3 s: the stream is cut at least twice
        ws.send("s" + i);
        await new Promise((r) => setTimeout(r, 50));
      }
      await H.until(() => log.filter((e) => e.type === "message").length >= 60);
      await new Promise((r) => setTimeout(r, 1200));
      ws.close();
      await H.closed(ws);
      return log.map((e) => e.type === "message" ? e.data : e.type);
    }""")
    assert result == ["open"] + [f"s{i}" for i in range(60)] + ["close"]
    assert len(streams) >= 3


@pytest.mark.parametrize("share", [False, True], ids=["v1", "v2"])
def test_sockets_work_when_every_stream_is_a_poll(context, tmp_path, share):
    """``max_streams = 0``: every stream request is answered at once with what waits and a
    ``retry:`` (docs/deploy-shared-hosting.md, "When the slots run out"); the sockets still
    open, echo in order, hear each other and close with their code."""
    site = Site(str(tmp_path / "data"), streams=0, heartbeat=1, max_rate=0)
    try:
        page = open_page(context, site.url)
        result = page.evaluate("""async (share) => {
          const echo = new AltWebSocket(location.origin + "/echo", true, [], { share });
          const a = new AltWebSocket(location.origin + "/chat", true, [], { share });
          const b = new AltWebSocket(location.origin + "/chat", true, [], { share });
          const log = H.record(echo), heard = [];
          b.onmessage = (e) => heard.push(e.data);
          await Promise.all([H.opened(echo), H.opened(a), H.opened(b)]);
          for (let i = 0; i < 5; i++) echo.send("p" + i);
          a.send("to everyone");
          await H.until(() => log.length >= 6 && heard.includes("to everyone"));
          echo.close(4001, "done");
          await H.closed(echo);
          a.close(); b.close();
          return log.map((e) => e.type === "message" ? e.data
                                : e.type === "close" ? e.code : e.type);
        }""", share)
    finally:
        site.stop()
    assert result == ["open", "p0", "p1", "p2", "p3", "p4", 4001]
