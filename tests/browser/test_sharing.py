"""One session per browser (wire protocol version 2, docs/client.md "Sharing"): every emulated
``AltWebSocket`` of every tab of one profile rides one event stream and one uplink.

A Playwright browser context is one profile; its pages are tabs. Chromium has Web Locks, so
the default mode is the Web-Lock leader tab; ``share: "worker"`` asks for the SharedWorker
(the default of browsers without Web Locks), ``share: "page"`` the page alone.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from altwebsocket.storage.wake import count_streams, wake_folder

from ..support import TIMEOUT, Process, start_altws, start_deployment
from .conftest import HELPERS, MS

# Page-side helpers of these tests (window.TT): named sockets with their event logs.
TAB = r"""
window.TT = {
  sockets: {}, logs: {},
  start(name, url, options) {
    const ws = new AltWebSocket(url, true, [], options);
    TT.sockets[name] = ws;
    TT.logs[name] = H.record(ws);
    return ws;
  },
  async opened(names, ms = H.MS) {
    const sockets = names.map((n) => TT.sockets[n]);
    await H.until(() => sockets.every((ws) => ws.readyState !== 0), ms);
    const states = sockets.map((ws) => ws.readyState);
    return states.every((s) => s === 1) ? sockets.map((ws) => ws.transport)
      : "not open: " + states + " " + names.map((n) => TT.types(n)).join(" / ");
  },
  messages(name) {
    return TT.logs[name].filter((e) => e.type === "message").map((e) => e.data);
  },
  types(name) {
    return TT.logs[name].map((e) => e.type === "close" ? "close " + e.code : e.type);
  },
  wait(name, predicate, ms = H.MS) {
    return H.until(() => predicate(TT.messages(name)), ms);
  },
  has(name, text, ms = H.MS) {
    return TT.wait(name, (m) => m.includes(text), ms);
  },
  pair(chat, echo, options) {  // the two sockets of a tab
    TT.start("chat", chat, options);
    TT.start("echo", echo, options);
  },
  async status(url) {
    try {
      const r = await fetch(url, { cache: "no-store", signal: AbortSignal.timeout(H.MS) });
      return r.status;
    } catch (e) { return String(e); }
  },
};
"""

HISTORY = 10  # the chat sends the last 10 messages on join


def open_tab(context: Any, info_url: str, init: str | None = None) -> Any:
    """A tab on the deployment's origin (a same-origin JSON document) with the client
    (``init``: a script to run in the page before any other)."""
    page = context.new_page()
    page.set_default_timeout(3 * MS)
    if init:
        page.add_init_script(init)
    page.goto(info_url)
    page.add_script_tag(url="/static/altwebsocket.js")
    page.add_script_tag(content=HELPERS)
    page.add_script_tag(content=TAB)
    return page


def sessions_in(data: str) -> dict[str, int]:
    """Rows of aws_connections by app and state, read from the deployment's database."""
    db = sqlite3.connect(f"file:{os.path.join(data, 'altws.db')}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT app, state, COUNT(*) FROM aws_connections GROUP BY app, state")
        return {f"{app}:{state}": count for app, state, count in rows}
    finally:
        db.close()


def open_count(data: str, app: str) -> int:
    return sessions_in(data).get(f"{app}:1", 0)


def wait_for(predicate: Any, seconds: float = 3 * TIMEOUT) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def eight_tabs(context: Any, info_url: str, chat: str, echo: str, options: dict[str, Any],
               streams: Any, data: str, ms: int = MS, last_tab_checked: bool = True
               ) -> None:
    """The issue's scenario: 8 tabs x (chat, echo) on one profile, over the emulation.
    ``ms`` bounds each wait in the pages (a CGI process per request is slow on a busy box).
    ``context``: a Playwright context (Chromium), or a callable that opens a tab on a URL
    with the client and the helpers loaded (any engine, ``engine_tab_opener``)."""
    patience = 3 * ms / 1000
    opener = context if callable(context) else lambda url: open_tab(context, url)
    tabs = [opener(info_url) for _ in range(8)]
    for tab in tabs:  # all of them connect at once
        tab.evaluate("([chat, echo, o]) => TT.pair(chat, echo, o)", [chat, echo, options])
    for i, tab in enumerate(tabs):
        opened = tab.evaluate("(ms) => TT.opened(['chat', 'echo'], ms)", ms)
        assert opened == ["emulation", "emulation"], i
    # Each echo socket echoes, in every tab.
    for i, tab in enumerate(tabs):
        tab.evaluate("(i) => { TT.sockets.echo.send('echo ' + i);"
                     " TT.sockets.echo.send(new Uint8Array([i, 255])); }", i)
    for i, tab in enumerate(tabs):
        got = tab.evaluate("""async ([i, ms]) => {
          await TT.wait('echo', (m) => m.length >= 2, ms);
          const m = TT.messages('echo');
          return [m[0], m[1] && Array.from(new Uint8Array(await m[1].arrayBuffer()))];
        }""", [i, ms])
        assert got == [f"echo {i}", [i, 255]]
    # A chat message from the first tab reaches all eight chat sockets.
    tabs[0].evaluate("() => TT.sockets.chat.send('hello from tab 0')")
    for i, tab in enumerate(tabs):
        assert tab.evaluate("(ms) => TT.has('chat', 'hello from tab 0', ms)", ms), i
    # The browser's connections to the origin are not used up: a plain fetch answers at once.
    for tab in tabs:
        assert tab.evaluate("(url) => TT.status(url)", info_url) == 200
    # One session, one stream: not sixteen.
    assert wait_for(lambda: streams() == 1, patience), streams()
    assert open_count(data, "_session") == 1
    assert open_count(data, "chat") == 8 and open_count(data, "echo") == 8
    # The first tab closes; the seven others go on.
    tabs[0].close()
    assert wait_for(lambda: open_count(data, "chat") == 7 and open_count(data, "echo") == 7,
                    patience), \
        sessions_in(data)
    rest = tabs[1:]
    rest[0].evaluate("() => TT.sockets.chat.send('tab 1 after tab 0 left')")
    for i, tab in enumerate(rest, 1):
        tab.evaluate("(i) => TT.sockets.echo.send('again ' + i)", i)
    for i, tab in enumerate(rest, 1):
        assert tab.evaluate("(ms) => TT.has('chat', 'tab 1 after tab 0 left', ms)", ms), i
        assert tab.evaluate("([i, ms]) => TT.has('echo', 'again ' + i, ms)", [i, ms]), i
        assert tab.evaluate("() => TT.types('chat').concat(TT.types('echo'))").count("open") == 2
        chat_log = tab.evaluate("() => TT.messages('chat')")
        assert chat_log.count("hello from tab 0") == 1
        assert chat_log.count("tab 1 after tab 0 left") == 1
    # (After a handoff the dead tab's stream lasts on the server until its next heartbeat.)
    assert wait_for(lambda: streams() == 1, patience), streams()
    for k, tab in enumerate(rest):  # one after the other, as a person closes tabs
        tab.close()
        if k == len(rest) - 1 and not last_tab_checked:
            return  # (the last tab's goodbye: see the caller)
        assert wait_for(lambda k=k: open_count(data, "chat") == 6 - k, patience), sessions_in(data)
        time.sleep(0.2)
    # The last tab going away closes the session.
    assert wait_for(lambda: open_count(data, "_session") == 0, patience), sessions_in(data)


@pytest.fixture
def fresh_altws(tmp_path) -> Iterator[Process]:
    """A real ``altws serve`` (the emulation alone) of its own, so the database and the wake
    folder count this test alone; its one-second heartbeat lets it notice at once a stream
    whose tab is gone."""
    proc = start_altws("serve", str(tmp_path / "data"), "--no-daemon", heartbeat=1)
    proc.data = str(tmp_path / "data")  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.stop()


def engine_tab_opener(browser: Any) -> Any:
    """For :func:`eight_tabs`: open a tab of an ``engines.Browser`` with the client and the
    helpers loaded."""
    def opener(info_url: str) -> Any:
        tab = browser.new_tab()
        tab.goto(info_url)
        tab.load_script("/static/altwebsocket.js")
        tab.evaluate("() => {" + HELPERS + TAB + "}")
        return tab

    return opener


def test_eight_tabs_share_one_stream_in_every_engine(engine, fresh_altws):
    """The same eight tabs in Firefox ESR and WebKit (and Chromium, through the same engine
    driver), each in a fresh profile, in the sharing mode the engine picks by itself.

    The last tab's goodbye is not checked outside Chromium: when WebDriver closes the last
    window of Firefox or WebKit, its beacons (the close ops of its sockets, then S/close)
    are best effort — WebKit never delivered S/close in our runs, Firefox now and then lost
    the close ops too. The server's sweep closes what is left, ``gone_timeout`` after the
    stream went away (docs/client.md)."""
    data = fresh_altws.data  # type: ignore[attr-defined]
    folder = wake_folder(data)
    browser = engine.launch()
    try:
        eight_tabs(engine_tab_opener(browser), fresh_altws.url + "/echo/info",
                   fresh_altws.url + "/chat", fresh_altws.url + "/echo", {},
                   lambda: count_streams(folder), data,
                   last_tab_checked=engine.name == "chromium")
    finally:
        browser.close()


@pytest.mark.parametrize("share", [True, "worker"], ids=["default", "worker"])
def test_who_holds_the_session_by_default_and_on_request(context, fresh_altws, share):
    """By default (a browser with Web Locks) the tab itself holds the session: it holds the
    leader lock, and its sockets reach the hub with no hop between processes.
    ``share: "worker"`` puts the session in the SharedWorker: no tab holds the leader lock.
    Either way the socket echoes."""
    url = fresh_altws.url
    tab = open_tab(context, url + "/echo/info")
    held = tab.evaluate("""async ([u, share]) => {
      const ws = new AltWebSocket(u + "/echo", true, [], { share });
      const log = H.record(ws);
      await H.opened(ws);
      ws.send("which holder");
      await H.until(() => log.some((e) => e.data === "which holder"));
      return (await navigator.locks.query()).held.map((lock) => lock.name);
    }""", [url, share])
    leader = f"altwebsocket leader {url}/_session"
    assert (leader in held) == (share is True), held


@pytest.mark.parametrize("share", ["worker", "tabs"])
def test_eight_tabs_share_one_stream_on_altws_serve(context, fresh_altws, share):
    data = fresh_altws.data  # type: ignore[attr-defined]
    folder = wake_folder(data)
    eight_tabs(context, fresh_altws.url + "/echo/info", fresh_altws.url + "/chat",
               fresh_altws.url + "/echo", {"share": share}, lambda: count_streams(folder), data)


# --- handoff: the tab holding the session dies -------------------------------------------------

EXCHANGE = r"""async ([me, echoes, chats]) => {
  // Sends on both sockets at a steady pace (echo every 10 ms, chat every 30 ms), recording
  // when each echo comes back; resolves once everything of this tab came back.
  TT.echoTimes = [];
  TT.sockets.echo.addEventListener("message", () => TT.echoTimes.push(Date.now()));
  let e = 0, c = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      if (e < echoes) TT.sockets.echo.send(me + "-e" + e++);
      if (e % 3 === 0 && c < chats) TT.sockets.chat.send(me + "-c" + c++);
      if (e >= echoes && c >= chats) { clearInterval(timer); resolve(); }
    }, 10);
  });
  return true;
}"""


def crash(page: Any) -> None:
    """Kill the tab's renderer: no pagehide, no unload, no goodbye (as a crash or a discard)."""
    try:
        page.goto("chrome://crash", timeout=3 * MS)
    except Exception:  # the navigation fails: the page crashed
        pass


def test_handoff_when_the_holding_tab_crashes_loses_and_repeats_nothing(context, fresh_altws):
    """Leader-tab mode (the default): four tabs, the first holds the session; it crashes in
    the middle of an exchange. Another tab takes over within a second or two; every message
    of every remaining socket arrives exactly once, in order, in both directions, and the
    dead tab's sockets are closed on the server."""
    data = fresh_altws.data  # type: ignore[attr-defined]
    url = fresh_altws.url
    options = {"share": "tabs"}
    tabs = [open_tab(context, url + "/echo/info") for _ in range(4)]
    for i, tab in enumerate(tabs):  # the first to connect holds the session
        tab.evaluate("([u, o]) => TT.pair(u + '/chat', u + '/echo', o)", [url, options])
        assert tab.evaluate("() => TT.opened(['chat', 'echo'])") == ["emulation", "emulation"], i
    assert open_count(data, "chat") == 4
    echoes, chats = 150, 50
    names = [f"t{i}" for i in range(4)]
    for name, tab in zip(names, tabs):  # the exchange starts in every tab…
        tab.evaluate(f"(args) => {{ TT.exchange = ({EXCHANGE})(args); }}", [name, echoes, chats])
    time.sleep(0.5)  # …and the holding tab dies in the middle of it
    crash(tabs[0])
    crashed_at = time.time() * 1000
    survivors = list(zip(names[1:], tabs[1:]))
    logs = {}
    for name, tab in survivors:
        assert tab.evaluate("() => TT.exchange"), name
        done = tab.evaluate("""([me, echoes, others, chats]) => H.until(() =>
            TT.messages('echo').length >= echoes &&
            others.every((o) =>
              TT.messages('chat').filter((m) => m.startsWith(o + '-c')).length >= chats),
            3 * H.MS)""", [name, echoes, names[1:], chats])
        assert done, (name, len(tab.evaluate("() => TT.messages('echo')")))
    time.sleep(0.5)  # would a duplicate still come?
    for name, tab in survivors:
        logs[name] = tab.evaluate("""() => ({ echo: TT.messages('echo'), chat: TT.messages('chat'),
            types: TT.types('echo').concat(TT.types('chat')).filter((t) => t !== 'message'),
            times: TT.echoTimes })""")
        log = logs[name]
        assert log["types"] == ["open", "open"], (name, log["types"])  # no error, no close
        assert log["echo"] == [f"{name}-e{k}" for k in range(echoes)]  # once each, in order
        for other in names[1:]:
            assert [m for m in log["chat"] if m.startswith(other + "-c")] == \
                [f"{other}-c{k}" for k in range(chats)]
        # what the dead tab had sent and the server got: once each, in order
        from_dead = [m for m in log["chat"] if m.startswith("t0-c")]
        assert from_dead == [f"t0-c{k}" for k in range(len(from_dead))]
        # the handoff took a second or two at most (the longest silence of the echo)
        gaps = [b - a for a, b in zip(log["times"], log["times"][1:]) if b > crashed_at - 100]
        print(f"{name}: longest echo silence after the crash {max(gaps, default=0):.0f} ms")
        assert max(gaps, default=0) < 3000, max(gaps)
    # every tab saw the same chat, in the server's order
    assert logs["t1"]["chat"] == logs["t2"]["chat"] == logs["t3"]["chat"]
    # the dead tab's sockets are closed on the server; one session, one stream again
    assert wait_for(lambda: open_count(data, "chat") == 3 and open_count(data, "echo") == 3), \
        sessions_in(data)
    assert open_count(data, "_session") == 1
    assert wait_for(lambda: count_streams(wake_folder(data)) == 1)


def test_a_leading_tab_that_leaves_gets_its_sockets_closed_even_if_its_beacons_are_lost(
        context, fresh_altws):
    """Leader-tab mode: the tab holding the session leaves (pagehide, then bye); the beacon
    with the close ops of its sockets is best effort, and here it is dropped. The tab that
    leads next closes them itself (their refs come with the bye, which may reach it before it
    leads); the others go on."""
    data = fresh_altws.data  # type: ignore[attr-defined]
    url = fresh_altws.url
    tabs = [open_tab(context, url + "/echo/info") for _ in range(3)]
    for i, tab in enumerate(tabs):  # the first to connect holds the session
        tab.evaluate("([u, o]) => TT.pair(u + '/chat', u + '/echo', o)", [url, {"share": "tabs"}])
        assert tab.evaluate("() => TT.opened(['chat', 'echo'])") == ["emulation", "emulation"], i
    assert wait_for(lambda: open_count(data, "chat") == 3 and open_count(data, "echo") == 3)
    tabs[0].evaluate("""() => {  // every beacon of this tab is lost
      navigator.sendBeacon = () => true;
      const real = window.fetch;
      window.fetch = (u, o) => (o && o.keepalive) ? new Promise(() => {}) : real(u, o);
    }""")
    tabs[0].close()
    assert wait_for(lambda: open_count(data, "chat") == 2 and open_count(data, "echo") == 2), \
        sessions_in(data)
    for i, tab in enumerate(tabs[1:], 1):
        tab.evaluate("(i) => TT.sockets.echo.send('after ' + i)", i)
        assert tab.evaluate("(i) => TT.has('echo', 'after ' + i)", i), i
        types = tab.evaluate("() => TT.types('chat').concat(TT.types('echo'))")
        assert [t for t in types if t != "message"] == ["open", "open"], (i, types)  # no close
    assert open_count(data, "_session") == 1


# In a page, before the client: once window.STALE is set, the messages of the worker that
# tell which pages share the session ("peers") are dropped, so the page goes on believing in
# pages that have left.
STALE_PEERS = r"""(() => {
  const slot = Object.getOwnPropertyDescriptor(MessagePort.prototype, "onmessage");
  Object.defineProperty(MessagePort.prototype, "onmessage", {
    configurable: true,
    get() { return slot.get.call(this); },
    set(handler) {
      slot.set.call(this, handler && function (e) {
        if (window.STALE && e.data && e.data.t === "peers") { return; }
        return handler.call(this, e);
      });
    },
  });
})();"""


def test_the_last_tab_closes_the_session_even_if_it_still_believes_in_one_that_left(
        context, fresh_altws):
    """The last tab's goodbye must not hang on how fresh its news of the other tabs is: here
    it never hears that the first tab left. It sends ``S/close`` "unless open" the sockets it
    believes in; the server knows them closed, and closes the session at once (not after
    ``gone_timeout``, 60 s)."""
    data = fresh_altws.data  # type: ignore[attr-defined]
    url = fresh_altws.url
    first = open_tab(context, url + "/echo/info")
    last = open_tab(context, url + "/echo/info", init=STALE_PEERS)
    for tab in (first, last):
        tab.evaluate("([u, o]) => TT.pair(u + '/chat', u + '/echo', o)", [url, {"share": "worker"}])
        assert tab.evaluate("() => TT.opened(['chat', 'echo'])") == ["emulation", "emulation"]
    assert wait_for(lambda: open_count(data, "chat") == 2 and open_count(data, "echo") == 2)
    last.evaluate("() => { window.STALE = true; }")
    first.close()
    assert wait_for(lambda: open_count(data, "chat") == 1 and open_count(data, "echo") == 1), \
        sessions_in(data)
    last.evaluate("() => TT.sockets.echo.send('alone now')")
    assert last.evaluate("() => TT.has('echo', 'alone now')")
    last.close()
    assert wait_for(lambda: open_count(data, "_session") == 0, 10), sessions_in(data)
    assert open_count(data, "chat") == 0 and open_count(data, "echo") == 0


@pytest.mark.parametrize("share", ["worker", "tabs"])
def test_a_tab_that_crashes_gets_its_sockets_closed_and_the_others_go_on(context, fresh_altws,
                                                                         share):
    """A tab that is not holding the session dies without pagehide: the holder (the worker, or
    the leader tab) sees its Web Lock go free and closes its sockets on the server."""
    data = fresh_altws.data  # type: ignore[attr-defined]
    url = fresh_altws.url
    tabs = [open_tab(context, url + "/echo/info") for _ in range(3)]
    for tab in tabs:
        tab.evaluate("([u, o]) => TT.pair(u + '/chat', u + '/echo', o)", [url, {"share": share}])
        assert tab.evaluate("() => TT.opened(['chat', 'echo'])") == ["emulation", "emulation"]
    crash(tabs[1])
    assert wait_for(lambda: open_count(data, "chat") == 2 and open_count(data, "echo") == 2), \
        sessions_in(data)
    tabs[2].evaluate("() => TT.sockets.chat.send('still here')")
    for tab in (tabs[0], tabs[2]):
        assert tab.evaluate("() => TT.wait('chat', (m) => m.includes('still here'))")
        tab.evaluate("() => TT.sockets.echo.send('and echoing')")
        assert tab.evaluate("() => TT.wait('echo', (m) => m.includes('and echoing'))")
    assert open_count(data, "_session") == 1


# --- Apache CGI (altws cgi-server): one browser, one stream process ------------------------------

def session_stream_processes() -> list[int]:
    """The CGI processes Apache runs for ``GET …/_session/`` (the session streams)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        if (b"REQUEST_METHOD=GET" in environ
                and any(v.startswith(b"SCRIPT_FILENAME=") for v in environ)
                and any(v.startswith(b"PATH_INFO=/_session") for v in environ)):
            found.append(int(pid))
    return found


@pytest.fixture
def cgi(tmp_path) -> Iterator[Any]:
    running = start_deployment("cgi", str(tmp_path), heartbeat=1)  # max_streams: CGI's 12
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("share", ["worker", "tabs"])
def test_eight_tabs_cost_one_stream_process_on_apache_cgi(context, cgi, share):
    eight_tabs(context, cgi.base("echo") + "/info", cgi.base("chat"), cgi.base("echo"),
               {"share": share}, lambda: len(session_stream_processes()), cgi.data, ms=6 * MS)


# --- the module build and the declarations ------------------------------------------------------

def test_the_es_module_finds_its_worker_and_shares(context, fresh_altws):
    """``altwebsocket.mjs`` (no document.currentScript in a module) tells the client where
    the SharedWorker script is; two module pages share one session."""
    data = fresh_altws.data  # type: ignore[attr-defined]
    pages = []
    for _ in range(2):
        page = context.new_page()
        page.goto(fresh_altws.url + "/echo/info")
        page.add_script_tag(content=HELPERS)
        pages.append(page)
    for page in pages:
        result = page.evaluate("""async () => {
          const { AltWebSocket } = await import("/static/altwebsocket.mjs");
          const ws = new AltWebSocket(location.origin + "/echo", true);
          const got = [];
          ws.onmessage = (e) => got.push(e.data);
          await H.opened(ws);
          ws.send("from a module");
          await H.until(() => got.length >= 1);
          return [AltWebSocket.defaults.workerURL, got];
        }""")
        assert result == [fresh_altws.url + "/static/altwebsocket.js", ["from a module"]]
    assert open_count(data, "_session") == 1 and open_count(data, "echo") == 2


def test_the_share_option_type_checks(tmp_path):
    from .test_typescript import DECLARATIONS, tsc

    good = tsc(tmp_path, f"""/// <reference path="{DECLARATIONS}" />
const a = new AltWebSocket("/chat", true, [], {{ share: false }});
const b = new AltWebSocket("/chat", "auto", "v1",
                           {{ share: "tabs", workerURL: "/js/altwebsocket.js" }});
const c = new EventSocket("/chat", [], {{ share: true, reconnectTimeout: 5000 }});
const mode: boolean | string = AltWebSocket.defaults.share;
AltWebSocket.defaults.workerURL = "/static/altwebsocket.js";
""")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = tsc(tmp_path, f"""/// <reference path="{DECLARATIONS}" />
const a = new AltWebSocket("/chat", true, [], {{ share: "everything" }});
const b = new AltWebSocket("/chat", true, [], {{ workerURL: 42 }});
""")
    assert bad.stdout.count("error TS") >= 2, bad.stdout
