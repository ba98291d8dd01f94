"""Reliability of the shared session (protocol version 2) in a real browser, as
test_emulation.py checks it for version 1: ops of many sockets batched in one POST, lost
answers retried under the same seqs, a stream answered 503 then resumed, giving up after
``reconnectTimeout``, replayed events dropped, streams cut every second; and what one socket's
failure does to the others (nothing). ``share: "page"`` keeps the hub in the page, so that
``page.route`` sees its requests (a SharedWorker's are not routed); it is the same code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from ..support import Site, serving
from .conftest import open_page


def quiet(handler):  # type: ignore[no-untyped-def]
    """A route handler that may outlive its test: a POST still in flight when the context
    closes must not fail the next test."""
    def run(route):  # type: ignore[no-untyped-def]
        try:
            handler(route)
        except PlaywrightError:
            pass
    return run


def ops_of(body: str) -> list[dict[str, Any]]:
    return json.loads(body or "{}").get("ops", [])


def fetch_without_stream_copy(route):  # type: ignore[no-untyped-def]
    """Run an S/send on the server with its ``rid`` taken out: no copy of the answer comes
    on the stream (as when another process holds the stream), so the answer the test
    changes or loses is the only one the client gets."""
    body = json.loads(route.request.post_data or "{}")
    body.pop("rid", None)
    return route.fetch(post_data=json.dumps(body))


def test_ops_of_many_sockets_go_in_one_post(page, altws):
    posts: list[list[dict[str, Any]]] = []
    page.on("request", lambda r: posts.append(ops_of(r.post_data))
            if r.url.endswith("/_session/send") else None)
    result = page.evaluate("""async () => {
      const sockets = [0, 1, 2].map(() =>
        new AltWebSocket(location.origin + "/echo", true, [], { share: "page" }));
      const got = sockets.map(() => []);
      sockets.forEach((ws, i) => ws.onmessage = (e) => got[i].push(e.data));
      await Promise.all(sockets.map((ws) => H.opened(ws)));
      sockets[0].send("first");                         // goes out alone…
      await new Promise((r) => setTimeout(r, 0));
      for (let k = 0; k < 20; k++) sockets.forEach((ws, i) => ws.send(i + ":" + k));  // …these wait
      await H.until(() => got[0].length >= 21 && got[1].length >= 20 && got[2].length >= 20);
      return got;
    }""")
    assert result[0] == ["first"] + [f"0:{k}" for k in range(20)]
    assert result[1] == [f"1:{k}" for k in range(20)] and result[2] == [f"2:{k}" for k in range(20)]
    sends = [[op for op in ops if op["op"] == "send"] for ops in posts]
    batched = [ops for ops in sends if len({op["ref"] for op in ops}) == 3]
    assert batched, sends  # one POST carried the messages of all three sockets
    for op in batched[0]:
        seqs = [m["seq"] for m in op["messages"]]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    opens = [op for ops in posts for op in ops if op["op"] == "open"]
    assert len(opens) == 3 and len({op["ref"] for op in opens}) == 3


LOSE_ANSWERS = """async () => {
      const a = new AltWebSocket(location.origin + "/echo", true, [], { share: "page" });
      const b = new AltWebSocket(location.origin + "/echo", true, [], { share: "page" });
      const la = H.record(a), lb = H.record(b);
      await Promise.all([H.opened(a), H.opened(b)]);
      for (let i = 0; i < 20; i++) {
        a.send("a" + i); b.send("b" + i);
        if (i % 5 === 0) await new Promise((r) => setTimeout(r, 30));
      }
      const count = (l) => l.filter((e) => e.type === "message").length;
      await H.until(() => count(la) >= 20 && count(lb) >= 20 &&
                          a.bufferedAmount === 0 && b.bufferedAmount === 0);
      await new Promise((r) => setTimeout(r, 300));  // would a duplicate show up?
      a.close(); b.close();
      await Promise.all([H.closed(a), H.closed(b)]);
      const show = (l) => l.map((e) => e.type === "message" ? e.data : e.type);
      return [show(la), show(lb)];
    }"""


def lose_answers(page, seen: list[list[int]], lose: Any,  # type: ignore[no-untyped-def]
                 copy_on_stream: bool) -> None:
    """Route S/send: the server runs the ops, but the browser never hears the HTTP answer
    when ``lose(count)``; without ``copy_on_stream`` the request's ``rid`` is taken out, so
    no copy of the answer comes on the stream either (a stream held by another process)."""
    def route(route):  # type: ignore[no-untyped-def]
        body = json.loads(route.request.post_data or "{}")
        seen.append([m["seq"] for op in body.get("ops", []) if op["op"] == "send"
                     for m in op["messages"]])
        response = route.fetch() if copy_on_stream else fetch_without_stream_copy(route)
        if lose(len(seen)):
            route.abort("connectionreset")
        else:
            route.fulfill(response=response)

    page.route("**/_session/send", quiet(route))


def test_lost_post_answers_are_retried_and_delivered_once(page, altws):
    seen: list[list[int]] = []
    lose_answers(page, seen, lambda count: count % 2 == 0, copy_on_stream=False)
    result = page.evaluate(LOSE_ANSWERS)
    assert result[0] == ["open"] + [f"a{i}" for i in range(20)] + ["close"]
    assert result[1] == ["open"] + [f"b{i}" for i in range(20)] + ["close"]
    assert any(s and t and s[0] == t[0] for s, t in zip(seen, seen[1:]))  # the same seqs again


def test_the_answer_on_the_stream_stands_in_for_a_lost_http_answer(page, altws):
    seen: list[list[int]] = []
    lose_answers(page, seen, lambda count: count > 1, copy_on_stream=True)  # all but the first
    result = page.evaluate(LOSE_ANSWERS)
    assert result[0] == ["open"] + [f"a{i}" for i in range(20)] + ["close"]
    assert result[1] == ["open"] + [f"b{i}" for i in range(20)] + ["close"]
    sent = [seq for seqs in seen for seq in seqs]
    assert len(sent) == 40  # each message posted once: the copies on the stream answered


def stream_route(page, handler) -> None:  # type: ignore[no-untyped-def]
    """Route the session stream (GET S/) to ``handler``, everything else through."""
    def route(route):  # type: ignore[no-untyped-def]
        if route.request.method == "GET":
            handler(route)
        else:
            route.continue_()

    page.route("**/_session/", quiet(route))


def test_stream_503_is_retried_without_the_sockets_noticing(page, altws):
    hits = {"stream": 0}

    def busy_three_times(route):  # type: ignore[no-untyped-def]
        hits["stream"] += 1
        if hits["stream"] <= 3:
            route.fulfill(status=503, body='{"error": "overloaded", "message": "busy"}',
                          headers={"Retry-After": "0", "Content-Type": "application/json"})
        else:
            route.continue_()

    stream_route(page, busy_three_times)
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: "page" });
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


def test_every_socket_gives_up_with_1006_when_the_stream_stays_down(page, altws):
    stream_route(page, lambda route: route.fulfill(status=503, headers={"Retry-After": "0"},
                                                   body="{}"))
    result = page.evaluate("""async () => {
      const sockets = [0, 1].map(() => new AltWebSocket(location.origin + "/echo", true, [],
                                                        { share: "page", reconnectTimeout: 1500 }));
      const logs = sockets.map((ws) => H.record(ws));
      await Promise.all(sockets.map((ws) => H.closed(ws)));
      return logs.map((log) => log.map((e) => [e.type, e.code ?? null, e.wasClean ?? null]));
    }""")
    assert result == [[["error", None, None], ["close", 1006, False]]] * 2


def test_a_204_ends_every_socket_of_the_session_with_1006(context, short_streams):
    """The server says the session is over (204 on the resumed stream): each of its sockets
    that did not get its close event fails, as a lost version-1 connection does."""
    page = open_page(context, short_streams.url)
    state = {"over": False}
    stream_route(page, lambda route: route.fulfill(status=204, body="") if state["over"]
                 else route.continue_())
    page.evaluate("""async () => {
      window.sockets = [0, 1].map(() =>
        new AltWebSocket(location.origin + "/echo", true, [], { share: "page" }));
      window.logs = sockets.map((ws) => H.record(ws));
      await Promise.all(sockets.map((ws) => H.opened(ws)));
    }""")
    state["over"] = True  # the stream ends within a second; its resumption is answered 204
    closed = page.evaluate("""async () => {
      await Promise.all(sockets.map((ws) => H.closed(ws)));
      return logs.map((log) => log.map((e) => e.type === "close" ? [e.code, e.wasClean] : e.type));
    }""")
    assert closed == [["open", "error", [1006, False]]] * 2


def conversation(page: Any, sockets: int = 2, count: int = 60) -> list[list[str]]:
    return page.evaluate("""async ([n, count]) => {
      const sockets = Array.from({ length: n }, () =>
        new AltWebSocket(location.origin + "/echo", true, [], { share: "page" }));
      const logs = sockets.map((ws) => H.record(ws));
      await Promise.all(sockets.map((ws) => H.opened(ws)));
      for (let i = 0; i < count; i++) {          // about 3 s: the stream is cut at least twice
        sockets.forEach((ws, k) => ws.send(k + ":" + i));
        await new Promise((r) => setTimeout(r, 50));
      }
      const done = () => logs.every((l) => l.filter((e) => e.type === "message").length >= count);
      await H.until(done);
      await new Promise((r) => setTimeout(r, 1200));
      sockets.forEach((ws) => ws.close());
      await Promise.all(sockets.map((ws) => H.closed(ws)));
      return logs.map((l) => l.map((e) => e.type === "message" ? e.data : e.type));
    }""", [sockets, count])


def test_streams_cut_by_the_server_lose_and_double_nothing(context, short_streams):
    page = open_page(context, short_streams.url)
    resumes: list[str] = []
    page.on("request", lambda r: resumes.append(r.headers.get("last-event-id", ""))
            if r.url.endswith("/_session/") and r.method == "GET" else None)
    logs = conversation(page)
    for k, log in enumerate(logs):
        assert log == ["open"] + [f"{k}:{i}" for i in range(60)] + ["close"]
    assert len(resumes) >= 3
    assert all(resumes[1:]) and resumes[0] == ""  # each resumed with Last-Event-ID


def test_replayed_events_are_dropped(context, short_streams):
    """Every resumed stream asked without Last-Event-ID: the server replays what it kept, the
    hub and the sockets drop what they already delivered."""
    page = open_page(context, short_streams.url)
    replays = {"count": 0}

    def forget_where_we_were(route):  # type: ignore[no-untyped-def]
        headers = {k: v for k, v in route.request.headers.items() if k.lower() != "last-event-id"}
        replays["count"] += 1
        route.continue_(headers=headers)

    stream_route(page, forget_where_we_were)
    logs = conversation(page, sockets=2, count=40)
    for k, log in enumerate(logs):
        assert log == ["open"] + [f"{k}:{i}" for i in range(40)] + ["close"]
    assert replays["count"] >= 3


def test_a_failing_op_fails_its_socket_only(page, altws):
    """An op of one socket refused (403, 404, 413 or 400 in its result): that socket fails
    (1009 for 413, as a too-big message; else 1006); the other goes on."""
    victim: dict[str, Any] = {"ref": None, "status": 403}

    def refuse_the_victims_sends(route):  # type: ignore[no-untyped-def]
        ops = ops_of(route.request.post_data)
        response = fetch_without_stream_copy(route)
        body = response.json()
        for op, result in zip(ops, body.get("results", [])):
            if op["op"] == "send" and any(m.get("data") == "doomed" for m in op["messages"]):
                victim["ref"] = op["ref"]
                result.clear()
                result.update({"ref": op["ref"], "ok": False, "status": victim["status"],
                               "error": "refused", "message": "by the test"})
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/_session/send", quiet(refuse_the_victims_sends))
    for status, code in [(403, 1006), (404, 1006), (413, 1009), (400, 1006)]:
        victim["status"] = status
        result = page.evaluate("""async () => {
          const victim = new AltWebSocket(location.origin + "/echo", true, [], { share: "page" });
          const other = new AltWebSocket(location.origin + "/chat", true, [], { share: "page" });
          const lv = H.record(victim), lo = H.record(other);
          await Promise.all([H.opened(victim), H.opened(other)]);
          victim.send("doomed");
          await H.closed(victim);
          other.send("still talking");
          await H.until(() => lo.some((e) => e.data === "still talking"));
          // (the server did run the op, so its echo may come before the refusal is read)
          const out = { victim: lv.filter((e) => e.type !== "message")
                                  .map((e) => e.type === "close" ? [e.code, e.wasClean] : e.type),
                        other: other.readyState, otherLog: lo.map((e) => e.type) };
          other.close();
          await H.closed(other);
          return out;
        }""")
        assert result["victim"] == ["open", "error", [code, False]], status
        assert result["other"] == 1 and "close" not in result["otherLog"][:-1]


@pytest.fixture(scope="module")
def beating(tmp_path_factory) -> Iterator[Site]:
    """Heartbeats every 0.5 s: the stream's watchdog gives a silent one 2.5 × 0.5 + 5 s."""
    yield from serving(Site(str(tmp_path_factory.mktemp("beating")), heartbeat=0.5))


# The page's fetch, wrapped: a session stream opened before `window.silent` is set passes its
# bytes through until then, and nothing after (the connection is dead but never says so); a
# stream opened later is left alone. Counts the stream requests.
SILENCER = """() => {
  const real = window.fetch;
  window.streams = 0;
  window.silent = false;
  window.fetch = (url, options) => {
    if (!(options && options.headers && options.headers["X-AltWS-Session"])) {
      return real(url, options);
    }
    window.streams++;
    return real(url, options).then((response) => {
      if (!response.body) return response;
      const reader = response.body.getReader();
      const later = window.silent;  // opened after the silence: a new, healthy connection
      const body = new ReadableStream({
        async pull(controller) {
          const chunk = await reader.read();
          if (chunk.done) return controller.close();
          if (later || !window.silent) controller.enqueue(chunk.value);
          else await new Promise(() => {});  // no byte, no end
        },
        cancel() { reader.cancel(); },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    });
  };
}"""


def test_a_stream_that_goes_silent_is_replaced_and_one_that_beats_is_kept(context, beating):
    """Heartbeats keep a stream (no reconnection over 9 s, longer than the watchdog's 6.25 s:
    each beat moves its deadline); a stream that stops sending anything, heartbeats included,
    is dropped 2.5 × heartbeat + 5 s after its last byte (which came up to a heartbeat before
    the silence) and read again from where it was: the message echoed into the silence
    arrives."""
    page = open_page(context, beating.url)
    page.evaluate(SILENCER)
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: "page" });
      const log = H.record(ws);
      await H.opened(ws);
      await new Promise((r) => setTimeout(r, 9000));
      const kept = window.streams;
      window.silent = true;  // from now on the stream says nothing
      const muted = Date.now();
      ws.send("through the silence");
      await H.until(() => window.streams > kept, 15000);
      const replacedAfter = Date.now() - muted;
      await H.until(() => log.some((e) => e.data === "through the silence"), 5000);
      return { kept, replacedAfter, log: log.map((e) => e.data ?? e.type) };
    }""")
    assert result["kept"] == 1, result
    assert 5500 <= result["replacedAfter"] <= 9000, result
    assert result["log"] == ["open", "through the silence"], result


@pytest.fixture(scope="module")
def small_messages(tmp_path_factory) -> Iterator[Site]:
    yield from serving(Site(str(tmp_path_factory.mktemp("small-messages")), max_message=1000))


@pytest.mark.parametrize("share", ["page", "worker"])
def test_a_message_over_max_message_closes_that_socket_with_1009(context, small_messages, share):
    page = open_page(context, small_messages.url)
    result = page.evaluate("""async (share) => {
      const options = { share };
      const big = new AltWebSocket(location.origin + "/echo", true, [], options);
      const small = new AltWebSocket(location.origin + "/echo", true, [], options);
      const lb = H.record(big), ls = H.record(small);
      await Promise.all([H.opened(big), H.opened(small)]);
      big.send("x".repeat(2000));
      small.send("fits");
      await H.closed(big);
      await H.until(() => ls.some((e) => e.data === "fits"));
      small.send("and again");
      await H.until(() => ls.some((e) => e.data === "and again"));
      return { big: lb.map((e) => e.type === "close" ? [e.code, e.wasClean] : e.type),
               small: ls.map((e) => e.type === "message" ? e.data : e.type) };
    }""", share)
    assert result == {"big": ["open", "error", [1009, False]],
                      "small": ["open", "fits", "and again"]}


def test_an_unknown_app_fails_that_socket_only(page, altws):
    # B/info of an app that does not exist answers as the echo's would, so the socket goes
    # to the session, where its open op is refused (404 unknown app).
    info = page.evaluate("() => fetch('/echo/info').then((r) => r.text())")
    page.route("**/nope/info", lambda route: route.fulfill(
        status=200, body=info, headers={"Content-Type": "application/json"}))
    result = page.evaluate("""async () => {
      const other = new AltWebSocket(location.origin + "/echo", true, [], { share: "page" });
      await H.opened(other);
      const nope = new AltWebSocket(location.origin + "/nope", true, [], { share: "page" });
      const log = H.record(nope);
      await H.closed(nope);
      other.send("fine");
      const got = [];
      other.onmessage = (e) => got.push(e.data);
      await H.until(() => got.length >= 1);
      return { nope: log.map((e) => e.type === "close" ? [e.code, e.wasClean] : e.type),
               other: [other.readyState, got] };
    }""")
    assert result == {"nope": ["error", [1006, False]], "other": [1, ["fine"]]}


def test_share_false_is_version_1(page, altws):
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.method + " " + r.url.split("?")[0]))
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share: false });
      const log = H.record(ws);
      await H.opened(ws);
      ws.send("v1");
      await H.until(() => log.length >= 2);
      ws.close(1000, "bye");
      await H.closed(ws);
      return log.map((e) => e.type === "message" ? e.data
                            : e.type === "close" ? [e.code, e.reason] : e.type);
    }""")
    assert result == ["open", "v1", [1000, "bye"]]
    origin = altws.url
    assert not [u for u in urls if "/_session" in u or u.endswith("/info")]
    assert f"POST {origin}/echo/new" in urls and f"GET {origin}/echo/" in urls
    assert f"POST {origin}/echo/send" in urls and f"POST {origin}/echo/close" in urls


def test_a_server_without_version_2_gets_version_1(page, altws):
    """B/info without 2 in `versions` (a server of before): the shared setting falls back."""
    def old_info(route):  # type: ignore[no-untyped-def]
        response = route.fetch()
        body = response.json()
        body.pop("versions", None)
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/echo/info", quiet(old_info))
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin + "/echo", true);
      const got = [];
      ws.onmessage = (e) => got.push(e.data);
      await H.opened(ws);
      ws.send("old server");
      await H.until(() => got.length >= 1);
      ws.close();
      await H.closed(ws);
      return got;
    }""")
    assert result == ["old server"]
    assert any("/echo/new" in u for u in urls) and not any("/_session" in u for u in urls)


@pytest.mark.parametrize("share", [False, "page"], ids=["v1", "v2"])
def test_a_subprotocol_never_asked_for_fails_the_connection(page, altws, share):
    """The server's answer names a protocol the client did not offer (it offered none): the
    connection fails (error, close 1006), as a browser fails such a handshake (RFC 6455
    §4.1)."""
    def name_one(route):  # type: ignore[no-untyped-def]
        response = fetch_without_stream_copy(route) if share else route.fetch()
        body = response.json()
        for result in body.get("results", [body]):
            if "protocol" in result:
                result["protocol"] = "surprise"
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/_session/send" if share else "**/echo/new", quiet(name_one))
    result = page.evaluate("""async (share) => {
      const ws = new AltWebSocket(location.origin + "/echo", true, [], { share });
      const log = H.record(ws);
      await H.closed(ws);
      return [ws.protocol, log.map((e) => e.type === "close" ? [e.code, e.wasClean] : e.type)];
    }""", share)
    assert result == ["", ["error", [1006, False]]]
