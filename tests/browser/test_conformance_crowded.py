"""The WebSocket API conformance suite (test_conformance.py) with a dozen other sockets open
at once, as a page or an app of a few tabs has them: the sockets under test share the
browser's session with those twelve, and must pass exactly as the native reference does.

Variants: ``native`` (the browser's own ``WebSocket`` beside the crowd: the reference),
``tabs`` (the default sharing: a tab elected with Web Locks holds the session), ``worker``
(a SharedWorker holds it), ``page`` (the page holds it; the crowd is all in the page). After
each test the crowd must be intact: every socket still open, every echo still echoing —
failing or closing one socket (a refused subprotocol, a close while connecting…) leaves the
others alone.
"""

from __future__ import annotations

import inspect

import pytest

from . import test_conformance as suite
from .conftest import open_page

# The suite's tests that take `ws_page`, collected here again with the fixture below.
for _name, _test in vars(suite).items():
    if _name.startswith("test_") and "ws_page" in inspect.signature(_test).parameters:
        globals()[_name] = _test

CROWD = 12
VARIANTS = {"native": True, "worker": "worker", "tabs": True, "page": "page"}

OPEN_CROWD = """async ([count, share]) => {
  window.CROWD = [];
  for (let i = 0; i < count; i++) {
    const app = i % 2 ? "echo" : "chat";
    const ws = new AltWebSocket(location.origin + "/" + app, true, [], { share });
    ws.app = app;
    ws.got = [];
    ws.events = [];
    ws.onmessage = (e) => ws.got.push(e.data);
    for (const type of ["open", "error", "close"]) {
      ws.addEventListener(type, () => ws.events.push(type));
    }
    CROWD.push(ws);
  }
  await Promise.all(CROWD.map((ws) => H.opened(ws)));
  return CROWD.map((ws) => ws.transport);
}"""

CHECK_CROWD = """async (tag) => {
  const echoes = CROWD.filter((ws) => ws.app === "echo");
  echoes.forEach((ws, i) => ws.send(tag + " " + i));
  const back = await H.until(() => echoes.every((ws, i) => ws.got.includes(tag + " " + i)));
  return { back, states: CROWD.map((ws) => ws.readyState),
           events: [...new Set(CROWD.map((ws) => ws.events.join()))] };
}"""


@pytest.fixture(params=list(VARIANTS))
def ws_page(request, context, native_echo, altws):
    share = VARIANTS[request.param]
    page = open_page(context, altws.url)
    crowded = [(page, CROWD)] if request.param == "page" else [(page, CROWD // 2)]
    if request.param != "page":
        crowded.append((open_page(context, altws.url), CROWD - CROWD // 2))  # another tab
    for tab, count in crowded:
        assert tab.evaluate(OPEN_CROWD, [count, share]) == ["emulation"] * count
    if request.param == "native":
        construct, url = "(url, p) => new WebSocket(url, p)", native_echo.url
    else:
        option = "true" if share is True else f'"{share}"'
        construct = f"(url, p) => new AltWebSocket(url, true, p, {{ share: {option} }})"
        url = altws.url + "/echo"
    page.evaluate(
        "([construct, url]) => { window.C = /^\\(url, p\\) => new WebSocket/.test(construct)"
        " ? WebSocket : AltWebSocket; window.construct = eval(construct); window.ECHO = url;"
        " window.make = (p) => window.construct(url, p); }",
        [construct, url],
    )
    page.variant = request.param
    page.engine = "chromium"  # what the suite's per-engine expectations look up
    yield page
    for tab, count in crowded:
        assert tab.evaluate(CHECK_CROWD, "after " + request.node.name) == {
            "back": True, "states": [1] * count, "events": ["open"]}
