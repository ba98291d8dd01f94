"""The browser engines' one interface (``engines.py``), proven in each engine: several tabs
of one profile on a page of 127.0.0.1, evaluation with results, errors and timeouts, and a
tab closed or crashed while the others go on."""

from __future__ import annotations

import time

import pytest

from .engines import EvaluationError, EvaluationTimeout, TabGone


def test_evaluate_functions_expressions_errors_and_timeouts(engine, altws):
    browser = engine.shared()
    tab = browser.new_tab(altws.url + "/echo/info")
    try:
        assert tab.evaluate("async (a, b) => { await new Promise((r) => setTimeout(r, 20));"
                            " return { sum: a + b, list: [a, b], none: undefined, nil: null }; }",
                            40, 2) == {"sum": 42, "list": [40, 2], "nil": None}
        assert tab.evaluate("location.pathname") == "/echo/info"
        assert tab.evaluate("Promise.resolve(7)") == 7
        assert tab.evaluate("() => {}") is None
        assert tab.evaluate("(a = Math.max(1, 2), { b } = { b: 3 }) => a + b") == 5
        with pytest.raises(EvaluationError, match="TypeError: arguments given to an expr"):
            tab.evaluate("location.href", 1)
        with pytest.raises(EvaluationError, match="TypeError: bad"):
            tab.evaluate("() => { throw new TypeError('bad'); }")
        with pytest.raises(EvaluationError, match="RangeError: late"):
            tab.evaluate("async () => { await null; throw new RangeError('late'); }")
        started = time.monotonic()
        with pytest.raises(EvaluationTimeout):
            tab.evaluate("() => new Promise(() => {})", timeout=0.5)
        assert time.monotonic() - started < 5
        assert tab.evaluate("1 + 1") == 2  # the tab is still usable
    finally:
        tab.close()


def test_three_tabs_of_one_profile_each_load_a_page(engine, altws):
    browser = engine.shared()
    tabs = [browser.new_tab(f"{altws.url}/echo/info?tab={i}") for i in range(3)]
    try:
        read = [tab.evaluate("() => [location.search, JSON.parse(document.body.textContent).app,"
                             " document.visibilityState]") for tab in tabs]
        assert read == [[f"?tab={i}", "echo", "visible"] for i in range(3)]
        # one profile: what one tab stores, the others see; a broadcast reaches them all
        for tab in tabs[1:]:
            tab.evaluate("() => { window.heard = []; const channel = new BroadcastChannel('t3');"
                         " channel.onmessage = (e) => window.heard.push(e.data); }")
        tabs[0].evaluate("() => { localStorage.setItem('three-tabs', 'shared');"
                         " new BroadcastChannel('t3').postMessage('hello'); }")
        for tab in tabs[1:]:
            assert tab.evaluate("async () => { await H_wait(() => window.heard.length > 0);"
                                " return [localStorage.getItem('three-tabs'), window.heard]; }"
                                .replace("H_wait", WAIT)) == ["shared", ["hello"]]
    finally:
        for tab in tabs:
            tab.close()


def test_closing_a_tab_leaves_the_others_running(engine, altws):
    browser = engine.shared()
    tabs = [browser.new_tab(f"{altws.url}/echo/info?tab={i}") for i in range(3)]
    try:
        tabs[1].evaluate("() => { window.marker = 'one'; }")
        tabs[1].close()
        assert tabs[1] not in browser.tabs
        with pytest.raises(TabGone):
            tabs[1].evaluate("1")
        assert [tab.evaluate("location.search") for tab in (tabs[0], tabs[2])] == ["?tab=0",
                                                                                  "?tab=2"]
        again = browser.new_tab(f"{altws.url}/echo/info?tab=again")
        tabs.append(again)
        assert again.evaluate("[location.search, window.marker ?? null]") == ["?tab=again", None]
    finally:
        for tab in tabs:
            tab.close()


def test_a_crashed_tab_leaves_the_others_and_the_profile_running(engine, altws):
    browser = engine.shared()  # it goes on serving the tests after this one, too
    tabs = [browser.new_tab(f"{altws.url}/echo/info?tab={i}") for i in range(3)]
    try:
        for tab in tabs:
            tab.evaluate("() => { window.ticks = 0; setInterval(() => window.ticks++, 20);"
                         " localStorage.setItem('crash-profile', 'kept'); }")
        tabs[0].crash()
        assert tabs[0].crashed and tabs[0] in browser.tabs
        with pytest.raises(TabGone):
            tabs[0].evaluate("1")
        before = [tab.evaluate("window.ticks") for tab in tabs[1:]]
        after = [tab.evaluate(f"async () => {{ await {WAIT}(() => window.ticks > {n} + 3);"
                              " return location.search; }") for tab, n in zip(tabs[1:], before)]
        assert after == ["?tab=1", "?tab=2"]
        tabs.append(browser.new_tab(f"{altws.url}/echo/info?tab=fresh"))
        assert tabs[-1].evaluate("localStorage.getItem('crash-profile')") == "kept"
    finally:
        for tab in tabs:
            tab.close()


# a bounded wait for a condition, page-side (these pages have no test helpers loaded)
WAIT = ("((predicate) => new Promise((resolve, reject) => { const start = Date.now();"
        " (function check() { if (predicate()) return resolve(true);"
        " if (Date.now() - start > 5000) return reject(new Error('timed out'));"
        " setTimeout(check, 10); })(); }))")
