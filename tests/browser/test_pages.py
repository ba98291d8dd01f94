"""The chat and echo pages in a real browser: two people chat, history on join, hostile text
shown as text, a strict Content-Security-Policy, streams cut under a conversation."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ..support import Site, serving
from .conftest import MS

CSP = "default-src 'self'"


def open_chat(browser, server_url: str, name: str, transport: str = "emulation",
              csp: str = CSP):  # type: ignore[no-untyped-def]
    """A fresh browser context on chat.html, served with a strict CSP; returns (page, errors)."""
    context = browser.new_context(viewport={"width": 390, "height": 700})
    page = context.new_page()
    page.set_default_timeout(3 * MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and "404" not in m.text else None)  # 404: the favicon
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(f"localStorage.setItem('altws-chat-name', {json.dumps(name)})")
    response = page.goto(f"{server_url}/static/chat.html?url=/chat&transport={transport}")
    if csp:  # the server itself sends the policy with the page
        assert response is not None
        assert csp in response.headers.get("content-security-policy", "")
    try:
        page.wait_for_selector("#status[data-state=open]")
    except Exception:
        raise AssertionError(
            f"the chat did not open: {errors} {page.text_content('#log')}") from None
    if csp:  # the policy is in force: an inline script is refused
        assert page.evaluate(INLINE_REFUSED)
        errors.clear()
    return page, errors


INLINE_REFUSED = """() => new Promise((resolve) => {
  document.addEventListener("securitypolicyviolation", () => resolve(!window.inlineRan));
  const script = document.createElement("script");
  script.textContent = "window.inlineRan = true";
  document.head.appendChild(script);
  setTimeout(() => resolve(false), 2000);
})"""


def say(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#text", text)
    page.press("#text", "Enter")


def bodies(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all("#log li.message .body", "els => els.map(e => e.textContent)")


def wait_bodies(page, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    page.wait_for_function("(n) => document.querySelectorAll('#log li.message').length >= n",
                           arg=count)
    return bodies(page)


def test_two_people_chat_with_history_and_no_html_injection(browser, live_server):
    alice, alice_errors = open_chat(browser, live_server.url, "alice")
    assert alice.get_attribute("#status", "data-transport") == "emulation"
    assert "emulation" in alice.text_content("#status")
    for i in range(12):
        say(alice, f"old {i}")
    assert wait_bodies(alice, 12) == [f"old {i}" for i in range(12)]

    bob, bob_errors = open_chat(browser, live_server.url, "bob")
    history = wait_bodies(bob, 10)
    assert history == [f"old {i}" for i in range(2, 12)]  # the last 10, oldest first
    assert bob.eval_on_selector_all("#log li.message",
                                    "els => els.every(e => e.classList.contains('history'))")

    hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"><b>bold</b>'
    say(bob, hostile)
    assert wait_bodies(alice, 13)[-1] == hostile
    say(alice, "hi bob")
    for page in (alice, bob):
        got = wait_bodies(page, 14 if page is alice else 12)
        assert got[-2:] == [hostile, "hi bob"]
        assert page.evaluate("window.pwned") is None
        assert page.eval_on_selector_all("#log img, #log b, #log script", "els => els.length") == 0
    assert alice.eval_on_selector_all(
        "#log li.message .who", "els => els.map(e => e.firstChild.textContent)")[-2:] == [
            "bob", "alice"]
    assert alice.eval_on_selector_all(
        "#log li.mine .body", "els => els.map(e => e.textContent)")[-1] == "hi bob"
    assert alice_errors == [] and bob_errors == []  # nothing refused by the CSP, no exception
    alice.context.close()
    bob.context.close()


def test_echo_page_text_and_bytes(browser, live_server):
    # The page's own CSP forbids eval, which Playwright's wait_for_function polls with; the
    # policy itself is checked by the chat tests.
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(3 * MS)
    page.goto(f"{live_server.url}/static/echo.html?url=/echo&transport=emulation")
    page.wait_for_selector("#status[data-state=open]")
    page.fill("#text", "<i>echo me</i>")
    page.press("#text", "Enter")
    page.click("#binary")
    page.wait_for_function("document.querySelectorAll('#log li.message').length >= 2")
    texts = page.eval_on_selector_all("#log li.message .body", "els => els.map(e => e.textContent)")
    assert texts[0] == "<i>echo me</i>"
    assert len(texts[1].split()) == 8
    page.fill("#rounds", "20")
    page.click("#bench")
    page.wait_for_function("[...document.querySelectorAll('#log li.notice')]"
                           ".some(e => e.textContent.includes('20 round trips'))")
    context.close()


def test_index_links_to_the_pages(browser, live_server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(live_server.url + "/")
    page.click("text=chat")
    page.wait_for_selector("#status[data-state=open]", timeout=3 * MS)
    assert "/static/chat.html?url=/chat" in page.url
    context.close()


def test_chat_through_cut_streams_loses_and_doubles_nothing(browser, short_streams):
    alice, _ = open_chat(browser, short_streams.url, "alice")
    bob, _ = open_chat(browser, short_streams.url, "bob")
    sent = []
    for i in range(16):  # about 3 s of conversation: every stream is cut several times
        who, page = ("alice", alice) if i % 2 == 0 else ("bob", bob)
        text = f"{who} {i}"
        say(page, text)
        sent.append(text)
        page.wait_for_timeout(180)
    for page in (alice, bob):
        assert wait_bodies(page, len(sent)) == sent
        page.wait_for_timeout(500)
        assert bodies(page) == sent  # and nothing more arrives later
        assert page.get_attribute("#status", "data-state") == "open"
    alice.context.close()
    bob.context.close()


@pytest.fixture
def serve_and_daemon(tmp_path) -> Iterator[Site]:
    """The site and the daemon beside it on one data folder; /info advertises the daemon."""
    yield from serving(Site(str(tmp_path / "data"), daemon=True))


def test_emulated_and_native_browsers_share_the_chat(browser, serve_and_daemon):
    # No CSP through request interception here: a page fulfilled by Playwright loses its
    # loopback address space, and Chromium's local network access checks then block ws://.
    policy = ""
    alice, alice_errors = open_chat(browser, serve_and_daemon.url, "alice", "emulation", policy)
    say(alice, "from the emulation")
    assert wait_bodies(alice, 1) == ["from the emulation"]
    bob, bob_errors = open_chat(browser, serve_and_daemon.url, "bob", "native", policy)
    assert alice.get_attribute("#status", "data-transport") == "emulation"
    assert bob.get_attribute("#status", "data-transport") == "native"
    assert wait_bodies(bob, 1) == ["from the emulation"]  # history, through the daemon
    say(bob, "from native <b>WebSocket</b>")
    assert wait_bodies(alice, 2)[-1] == "from native <b>WebSocket</b>"
    say(alice, "both ways")
    assert wait_bodies(bob, 3)[-2:] == ["from native <b>WebSocket</b>", "both ways"]
    auto, _ = open_chat(browser, serve_and_daemon.url, "carol", "auto", policy)
    assert auto.get_attribute("#status", "data-transport") == "native"
    assert alice_errors == [] and bob_errors == []
    for page in (alice, bob, auto):
        page.context.close()
