"""Which transport AltWebSocket picks: auto mode tries the daemon that B/info advertises and
falls back to the emulation without the app seeing the failed attempt; native mode without
a daemon fails like a refused WebSocket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..support import Site, free_port, serving
from .conftest import open_page


@pytest.fixture(scope="module")
def with_daemon(tmp_path_factory, native_echo) -> Iterator[Site]:
    """A site advertising the bare echo server as its daemon in /info."""
    base = native_echo.url.rsplit("/", 1)[0]
    yield from serving(Site(str(tmp_path_factory.mktemp("with-daemon")), websocket_url=base))


@pytest.fixture(scope="module")
def with_dead_daemon(tmp_path_factory) -> Iterator[Site]:
    """A site advertising a daemon nobody listens for."""
    yield from serving(Site(str(tmp_path_factory.mktemp("dead-daemon")),
                            websocket_url=f"ws://127.0.0.1:{free_port()}"))


ROUND_TRIP = """async ([emulate, useProtocolsSignature]) => {
  const url = location.origin + "/echo";
  const ws = useProtocolsSignature ? new AltWebSocket(url, []) :
             emulate === undefined ? new AltWebSocket(url) : new AltWebSocket(url, emulate);
  const log = H.record(ws);
  const before = ws.transport;
  try {
    await H.opened(ws);
  } catch (e) {
    await H.closed(ws);
    return { before, log: log.map((e) => e.type) };
  }
  ws.send("ping");
  await H.until(() => log.length >= 2);
  ws.close();
  await H.closed(ws);
  return {
    before, transport: ws.transport,
    log: log.map((e) => e.type === "message" ? e.data : e.type),
  };
}"""


@pytest.mark.parametrize("args", [["auto", False], [None, False], [None, True]],
                         ids=["auto", "omitted", "protocols-signature"])
def test_auto_uses_the_advertised_daemon(context, with_daemon, args):
    page = open_page(context, with_daemon.url)
    result = page.evaluate(ROUND_TRIP, args)
    assert result == {"before": "", "transport": "native", "log": ["open", "ping", "close"]}


def test_auto_falls_back_to_emulation_silently(context, with_dead_daemon):
    page = open_page(context, with_dead_daemon.url)
    result = page.evaluate(ROUND_TRIP, ["auto", False])
    assert result == {"before": "", "transport": "emulation", "log": ["open", "ping", "close"]}


def test_auto_without_daemon_is_emulation(page, altws):
    result = page.evaluate(ROUND_TRIP, ["auto", False])
    assert result == {"before": "", "transport": "emulation", "log": ["open", "ping", "close"]}


def test_native_with_http_base_uses_info(context, with_daemon):
    page = open_page(context, with_daemon.url)
    result = page.evaluate(ROUND_TRIP, [False, False])
    assert result["transport"] == "native" and result["log"] == ["open", "ping", "close"]


def test_native_without_daemon_fails(page, altws):
    result = page.evaluate(ROUND_TRIP, [False, False])
    assert result == {"before": "", "log": ["error", "close"]}


def test_emulation_with_a_ws_url_maps_it_to_http(page, altws):
    result = page.evaluate("""async () => {
      const ws = new AltWebSocket(location.origin.replace("http", "ws") + "/echo", true);
      const log = H.record(ws);
      await H.opened(ws);
      ws.send("mapped");
      await H.until(() => log.length >= 2);
      ws.close();
      await H.closed(ws);
      return [ws.transport, ws.url === location.origin.replace("http", "ws") + "/echo",
              log.map((e) => e.type === "message" ? e.data : e.type)];
    }""")
    assert result == ["emulation", True, ["open", "mapped", "close"]]
