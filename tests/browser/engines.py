"""One small interface over the three browser engines this Debian machine can drive:

* ``chromium``: ``/usr/bin/chromium`` through Playwright (as ``conftest.py`` always did);
* ``firefox``: ``/usr/bin/firefox-esr`` over WebDriver BiDi, spoken directly on the
  WebSocket that Firefox's remote agent opens (``--remote-debugging-port``; no geckodriver);
* ``webkit``: ``/usr/bin/WebKitWebDriver`` driving WebKitGTK's ``MiniBrowser`` (classic
  WebDriver, through Selenium), on an Xvfb screen of its own.

The same for each::

    browser = launch("firefox")           # a fresh browser with one profile
    tab = browser.new_tab(url)            # as many tabs as wanted, all in that profile
    tab.evaluate("async (x) => x + 1", 41, timeout=5)   # -> 42 (the JSON result)
    tab.goto(url); tab.close(); tab.crash()              # crash: its renderer is killed
    browser.close()

Nothing is downloaded: the browsers are Debian's. Every wait is bounded; the tests point the
browsers at 127.0.0.1 only, and the browsers' own background network features (updates,
telemetry, remote settings, safe browsing…) are switched off where a setting allows.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from itertools import count
from typing import Any, Callable

from ..support import TIMEOUT, Process

ENGINES = ("chromium", "firefox", "webkit")

CHROMIUM = os.environ.get("ALTWS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
FIREFOX = os.environ.get("ALTWS_FIREFOX", "/usr/bin/firefox-esr")
WEBKIT_DRIVER = os.environ.get("ALTWS_WEBKIT_DRIVER", "/usr/bin/WebKitWebDriver")
MINIBROWSER_GLOB = "/usr/lib/*/webkit2gtk-4.*/MiniBrowser"
XVFB = "/usr/bin/Xvfb"

DEFAULT_TIMEOUT = 3 * TIMEOUT  # seconds: one evaluation, one navigation

# Firefox preferences on top of those its remote agent sets itself: nothing may reach out to
# the internet, background tabs keep normal timers, and each tab of a site gets a content
# process of its own (so that killing one tab's process leaves the others alive).
FIREFOX_PREFS: dict[str, Any] = {
    "app.normandy.enabled": False,
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "browser.newtabpage.enabled": False,
    "browser.region.update.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.sessionstore.resume_from_crash": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.tabs.crashReporting.sendReport": False,
    "browser.tabs.unloadOnLowMemory": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "devtools.jsonview.enabled": False,
    "dom.ipc.processCount": 64,
    "dom.ipc.processCount.webIsolated": 64,
    "dom.min_background_timeout_value": 4,
    "dom.timeout.enable_budget_timer_throttling": False,
    "extensions.update.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.server": "",
}

# Every evaluation goes through this page-side wrapper, the same in every engine: it awaits
# the function (or expression), bounds it with a timer, and hands back one JSON string, so
# results and errors come back alike whatever the driver's own serialization is.
_WRAPPER = r"""async (argsJson, ms) => {
  let timer;
  const LATE = {};
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(LATE), ms); });
  try {
    const args = JSON.parse(argsJson);
    const run = async () => {
      const given = (%s);  // a function (called with the arguments) or any expression
      if (typeof given === "function") return given(...args);
      if (args.length) throw new TypeError("arguments given to an expression");
      return given;
    };
    const value = await Promise.race([run(), late]);
    if (value === LATE) return JSON.stringify({ timeout: ms });
    return JSON.stringify({ ok: value === undefined ? null : value });
  } catch (e) {
    const name = e && e.name ? e.name : "Error";
    const text = e && e.message !== undefined ? e.message : String(e);
    return JSON.stringify({ error: name + ": " + text });
  } finally {
    clearTimeout(timer);
  }
}"""



class EngineError(RuntimeError):
    """The browser or its driver failed (not the page's code)."""


class EvaluationError(EngineError):
    """The page's code threw (or rejected): the message is ``Name: message``."""


class EvaluationTimeout(EngineError):
    """No result within the timeout."""


class TabGone(EngineError):
    """The tab was closed or crashed."""


def _wrapped(source: str) -> str:
    return _WRAPPER % source


def _unwrap(raw: Any, timeout: float) -> Any:
    if not isinstance(raw, str):
        raise EngineError(f"unexpected evaluation result: {raw!r}")
    outcome = json.loads(raw)
    if "ok" in outcome:
        return outcome["ok"]
    if "timeout" in outcome:
        raise EvaluationTimeout(f"no result within {timeout:g} s")
    raise EvaluationError(outcome["error"])


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid: int) -> None:
    """SIGKILL one process (a tab's renderer) and wait until it is gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not _wait(lambda: not _alive(pid), TIMEOUT):
        raise EngineError(f"process {pid} survived SIGKILL")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _killpg(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL what is left of a browser's process group (its leader may be gone already,
    not its children), then reap the leader."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        raise EngineError(f"process {proc.pid} survived SIGKILL") from None


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return -1


def _version(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=3 * TIMEOUT,
                             env={**os.environ, "DISPLAY": ""}).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    match = re.search(r"\d+(\.\d+)+\S*", out)
    return match.group(0) if match else out.strip() or "?"


# --------------------------------------------------------------------------- the interface


_LIVE: list[Browser] = []  # browsers not closed yet: closed at exit whatever happened


@atexit.register
def _close_all() -> None:
    for browser in list(_LIVE):
        try:
            browser.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Tab:
    """One tab (page) of a browser's profile."""

    engine = ""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.closed = False
        self.crashed = False

    def goto(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Navigate and wait until the page has loaded."""
        self._check()
        self._goto(url, timeout)

    def evaluate(self, source: str, *args: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run a JavaScript function (called with ``args``) or expression in the page, await
        it, and return its result through JSON (``undefined`` gives ``None``)."""
        self._check()
        return _unwrap(self._evaluate(_wrapped(source), json.dumps(list(args)), timeout),
                       timeout)

    def load_script(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Add ``<script src=url>`` to the page and wait until it has run."""
        self.evaluate("""(src) => new Promise((resolve, reject) => {
          const script = document.createElement("script");
          script.src = src;
          script.onload = () => resolve(true);
          script.onerror = () => reject(new Error("could not load " + src));
          (document.head || document.documentElement).appendChild(script);
        })""", url, timeout=timeout)

    def close(self) -> None:
        """Close the tab (the page's unload handlers run)."""
        if not self.closed:
            self.closed = True
            self.browser.tabs.remove(self)
            if not self.crashed:
                self._close()
            else:  # what is left of it (a crashed-tab page), if the browser kept anything
                try:
                    self._close()
                except Exception:  # noqa: BLE001 - it may be gone already
                    pass

    def crash(self) -> None:
        """Kill the process that renders this tab, as a crash would: no unload handler runs.
        The browser and its other tabs go on."""
        self._check()
        self._crash()
        self.crashed = True

    def _check(self) -> None:
        if self.closed or self.crashed:
            raise TabGone("the tab is " + ("closed" if self.closed else "crashed"))

    # per engine
    def _goto(self, url: str, timeout: float) -> None:
        raise NotImplementedError

    def _evaluate(self, declaration: str, args_json: str, timeout: float) -> Any:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _crash(self) -> None:
        raise NotImplementedError


class Browser:
    """One running browser with one profile of its own; its tabs share that profile."""

    engine = ""

    def __init__(self) -> None:
        self.tabs: list[Tab] = []
        self.version = ""
        self.closed = False
        _LIVE.append(self)

    def new_tab(self, url: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Tab:
        tab = self._new_tab(timeout)
        self.tabs.append(tab)
        if url:
            tab.goto(url, timeout)
        return tab

    def close(self) -> None:
        """Close every tab and end the browser (its processes and profile folder)."""
        if not self.closed:
            self.closed = True
            if self in _LIVE:
                _LIVE.remove(self)
            self.tabs.clear()
            self._shutdown()

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _new_tab(self, timeout: float) -> Tab:
        raise NotImplementedError

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- Chromium


class _Playwright:
    """One Playwright (sync API) for the whole test process, and one Debian Chromium in it:
    the sync API allows only one Playwright per thread. Each Chromium "profile" is a browser
    context of its own (its own storage, cookies, workers)."""

    lock = threading.Lock()
    manager: Any = None
    playwright: Any = None
    chromium: Any = None

    @classmethod
    def browser(cls) -> Any:
        with cls.lock:
            if cls.chromium is None:
                from playwright.sync_api import sync_playwright

                cls.manager = sync_playwright()
                cls.playwright = cls.manager.start()
                atexit.register(cls.stop)
                cls.chromium = cls.playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=3000 * TIMEOUT)
            return cls.chromium

    @classmethod
    def stop(cls) -> None:
        with cls.lock:
            if cls.chromium is not None:
                try:
                    cls.chromium.close()
                finally:
                    cls.chromium = None
                    cls.manager.__exit__(None, None, None)


class ChromiumTab(Tab):
    engine = "chromium"

    def __init__(self, browser: ChromiumBrowser, page: Any) -> None:
        super().__init__(browser)
        self.page = page
        self._crash_seen = threading.Event()
        page.on("crash", lambda _page: self._crash_seen.set())

    def _goto(self, url: str, timeout: float) -> None:
        self.page.goto(url, timeout=timeout * 1000)

    def _evaluate(self, declaration: str, args_json: str, timeout: float) -> Any:
        from playwright.sync_api import Error

        try:
            # Playwright's evaluate has no timeout of its own: the page-side timer bounds it.
            return self.page.evaluate(f"([a, ms]) => ({declaration})(a, ms)",
                                      [args_json, int(timeout * 1000)])
        except Error as error:
            raise EngineError(str(error)) from None

    def _close(self) -> None:
        self.page.close(run_before_unload=False)

    def _crash(self) -> None:
        from playwright.sync_api import Error

        try:
            # a debug URL: the browser makes the tab's renderer crash, as Playwright's own
            # tests do (a CDP Page.crash never answers, and Playwright's send() waits forever)
            self.page.goto("chrome://crash", timeout=TIMEOUT * 1000)
        except Error:
            pass
        deadline = time.monotonic() + TIMEOUT
        while not self._crash_seen.is_set():  # Playwright's events come in on this thread
            if time.monotonic() > deadline:
                raise EngineError("the tab did not crash")
            try:
                self.page.wait_for_timeout(20)
            except Error as error:  # "Page crashed": it is gone
                if "crash" not in str(error).lower():
                    raise EngineError(str(error)) from None
                break


class ChromiumBrowser(Browser):
    engine = "chromium"

    def __init__(self) -> None:
        super().__init__()
        chromium = _Playwright.browser()
        self.version = chromium.version
        self.context = chromium.new_context()

    def _new_tab(self, timeout: float) -> Tab:
        page = self.context.new_page()
        page.set_default_timeout(timeout * 1000)
        return ChromiumTab(self, page)

    def _shutdown(self) -> None:
        self.context.close()


# --------------------------------------------------------------------------- Firefox


class _BiDi:
    """A WebDriver BiDi client: JSON commands over Firefox's WebSocket, one at a time."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        try:  # straight to 127.0.0.1, whatever proxy the environment names (websockets ≥ 15)
            self._connection = connect(url, max_size=None, open_timeout=TIMEOUT, proxy=None)
        except TypeError:  # an older websockets: it knows no proxies
            self._connection = connect(url, max_size=None, open_timeout=TIMEOUT)
        self.ws = self._connection.__enter__()
        self.ids = count(1)

    def call(self, method: str, timeout: float = DEFAULT_TIMEOUT, **params: Any) -> Any:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                raise EvaluationTimeout(f"{method}: no answer within {timeout:g} s") from None
            if message.get("id") != ident:
                continue  # an event, or the late answer to a command that timed out
            if message.get("type") == "error":
                raise EngineError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message.get("result")

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


class FirefoxTab(Tab):
    engine = "firefox"
    browser: FirefoxBrowser

    def __init__(self, browser: FirefoxBrowser, context: str) -> None:
        super().__init__(browser)
        self.context = context

    def _goto(self, url: str, timeout: float) -> None:
        self.browser.bidi.call("browsingContext.navigate", timeout=timeout,
                               context=self.context, url=url, wait="complete")

    def _evaluate(self, declaration: str, args_json: str, timeout: float) -> Any:
        result = self.browser.bidi.call(
            "script.callFunction", timeout=timeout + TIMEOUT,
            functionDeclaration=declaration, target={"context": self.context},
            arguments=[{"type": "string", "value": args_json},
                       {"type": "number", "value": int(timeout * 1000)}],
            awaitPromise=True, resultOwnership="none")
        if result.get("type") == "exception":
            raise EvaluationError(result["exceptionDetails"].get("text", "exception"))
        return result["result"].get("value")

    def _close(self) -> None:
        self.browser.bidi.call("browsingContext.close", context=self.context)

    def _crash(self) -> None:
        _kill(self.browser.content_pid(self.context))


class FirefoxBrowser(Browser):
    engine = "firefox"

    def __init__(self) -> None:
        super().__init__()
        self.profile = tempfile.mkdtemp(prefix="altws-firefox-")
        with open(os.path.join(self.profile, "user.js"), "w", encoding="utf-8") as prefs:
            for name, value in FIREFOX_PREFS.items():
                prefs.write(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n")
        # --remote-allow-system-access lets the driver read which content process renders a
        # tab (for crash()); nothing else uses the browser's privileged side.
        self.process = Process(
            [FIREFOX, "--headless", "--no-remote", "--profile", self.profile,
             "--remote-debugging-port=0", "--remote-allow-system-access", "about:blank"],
            pattern=r"ws://127\.0\.0\.1:\d+", env={"MOZ_CRASHREPORTER_DISABLE": "1"})
        try:
            self.bidi = _BiDi(self.process.url + "/session")
            session = self.bidi.call("session.new", capabilities={
                "alwaysMatch": {"acceptInsecureCerts": False, "unhandledPromptBehavior": "ignore"}})
            self.version = session["capabilities"]["browserVersion"]
            self.chrome_context = self.bidi.call(
                "browsingContext.getTree", **{"moz:scope": "chrome"})["contexts"][0]["context"]
        except Exception:
            self.close()
            raise

    def _new_tab(self, timeout: float) -> Tab:
        # A window per tab: every tab stays visible, none is throttled as a background tab.
        # (The start-up window stays as it is, so that closing every tab never closes the
        # browser's last window.)
        context = self.bidi.call("browsingContext.create", timeout=timeout,
                                 type="window")["context"]
        return FirefoxTab(self, context)

    def content_pid(self, context: str) -> int:
        pid = self.bidi.call("script.callFunction", target={"context": self.chrome_context},
                             functionDeclaration="""(id) => {
          const { NavigableManager } = ChromeUtils.importESModule(
            "chrome://remote/content/shared/NavigableManager.sys.mjs");
          return NavigableManager.getBrowserById(id).browsingContext.currentWindowGlobal.osPid;
        }""", arguments=[{"type": "string", "value": context}], awaitPromise=True)
        if pid.get("type") != "success":
            raise EngineError(f"no content process for the tab: {pid}")
        return int(pid["result"]["value"])

    def _shutdown(self) -> None:
        bidi = getattr(self, "bidi", None)
        if bidi is not None:
            try:
                bidi.call("browser.close", timeout=TIMEOUT)
            except Exception:  # noqa: BLE001 - it is going anyway
                pass
            bidi.close()
        process = getattr(self, "process", None)
        if process is not None:
            try:
                process.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            _killpg(process.proc)
        shutil.rmtree(self.profile, ignore_errors=True)


# --------------------------------------------------------------------------- WebKit


class _Xvfb:
    """An X server of its own for MiniBrowser (which has no headless mode). Its display
    number is drawn at random among free ones, and it is tried again on another if the
    server does not come up there: other programs on this machine start X servers too
    (``-displayfd`` alone picks the lowest free number, and two servers then race for it)."""

    def __init__(self) -> None:
        import random

        for _attempt in range(8):
            number = random.randrange(100, 60000)
            if os.path.exists(f"/tmp/.X{number}-lock") or os.path.exists(
                    f"/tmp/.X11-unix/X{number}"):
                continue
            # It writes the number to the pipe once it accepts clients (and again whenever it
            # resets, fatally if nobody reads: hence -noreset, and the pipe kept open).
            self._pipe, write = os.pipe()
            self.proc = subprocess.Popen(
                [XVFB, f":{number}", "-displayfd", str(write), "-nolisten", "tcp", "-noreset",
                 "-screen", "0", "1280x1024x24"],
                pass_fds=[write], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            os.close(write)
            ready = bool(select.select([self._pipe], [], [], 3 * TIMEOUT)[0])
            told = os.read(self._pipe, 64).decode().strip() if ready else ""
            if told == str(number) and self.proc.poll() is None:
                self.display = f":{number}"
                return
            self.stop()
        raise EngineError("Xvfb did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1


def minibrowser() -> str:
    import glob

    found = sorted(glob.glob(MINIBROWSER_GLOB))
    return os.environ.get("ALTWS_MINIBROWSER", found[-1] if found else "")


class WebKitTab(Tab):
    engine = "webkit"
    browser: WebKitBrowser

    def __init__(self, browser: WebKitBrowser, handle: str, marker: str) -> None:
        super().__init__(browser)
        self.handle = handle
        self.marker = marker  # its window.name: how it is found again after a crash

    def _goto(self, url: str, timeout: float) -> None:
        driver = self.browser.use(self)
        driver.set_page_load_timeout(timeout)
        driver.get(url)
        driver.execute_script("window.name = arguments[0];", self.marker)

    def _evaluate(self, declaration: str, args_json: str, timeout: float) -> Any:
        from selenium.common.exceptions import TimeoutException, WebDriverException

        driver = self.browser.use(self)
        driver.set_script_timeout(timeout + TIMEOUT)
        try:
            return driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                f" ({declaration})(arguments[0], arguments[1]).then(done);",
                args_json, int(timeout * 1000))
        except TimeoutException:
            raise EvaluationTimeout(f"no result within {timeout:g} s") from None
        except WebDriverException as error:
            raise EngineError(error.msg or str(error)) from None

    def _close(self) -> None:
        self.browser.use(self).close()
        self.browser.current = None

    def _crash(self) -> None:
        self.browser.crash(self)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(address: str) -> bool:
    """Whether a socket listens on ``address`` ("127.0.0.1:port"), read off /proc/net/tcp
    (no connection made: a probe would be a client to the server)."""
    host, port = address.rsplit(":", 1)
    local = "".join(f"{int(part):02X}" for part in reversed(host.split("."))) + f":{int(port):04X}"
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            return any(fields[1] == local and fields[3] == "0A"
                       for fields in (line.split() for line in table) if len(fields) > 3)
    except OSError:
        return False


class WebKitBrowser(Browser):
    """MiniBrowser, started here with its remote inspector on a port of 127.0.0.1, and
    WebKitWebDriver attached to it (``--target``). WebKit ends the WebDriver session as soon
    as the process of any page under automation dies, but the browser and its other pages
    run on: after a crash a new session is opened on the same browser (same profile) and
    each tab is found again by its ``window.name``."""

    engine = "webkit"

    def __init__(self) -> None:
        super().__init__()
        self.home = tempfile.mkdtemp(prefix="altws-webkit-")
        self.current: WebKitTab | None = None
        self.driver: Any = None
        self.marks = count(1)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.xvfb = _Xvfb()
        try:
            inspector = f"127.0.0.1:{_free_port()}"
            env = {**os.environ, "DISPLAY": self.xvfb.display, "HOME": self.home,
                   "XDG_CACHE_HOME": os.path.join(self.home, "cache"),
                   "XDG_CONFIG_HOME": os.path.join(self.home, "config"),
                   "XDG_DATA_HOME": os.path.join(self.home, "data"),
                   "WEBKIT_INSPECTOR_SERVER": inspector,
                   "NO_AT_BRIDGE": "1", "GTK_A11Y": "none"}
            self.minibrowser = self._start([minibrowser(), "--automation"], env)
            # WebKitWebDriver must not try the inspector before it listens (it then hangs)
            if not _wait(lambda: _listening(inspector), 3 * TIMEOUT, step=0.05):
                raise EngineError("MiniBrowser's inspector did not start listening"
                                  + self._logs())
            self.port = _free_port()
            self._start([WEBKIT_DRIVER, f"--port={self.port}", f"--target={inspector}",
                         "--replace-on-new-session"], env)
            self.driver = self._session()
            self.version = self.driver.capabilities.get("browserVersion", "")
            # the start-up window is never a tab: closing a session's last window would end
            # the session
            self.start_window = self.driver.current_window_handle
        except Exception:
            self.close()
            raise

    def _start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.home, os.path.basename(args[0]) + ".log"), "wb")
        proc = subprocess.Popen(args, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def _logs(self) -> str:
        """The end of what MiniBrowser and WebKitWebDriver printed, for an error message."""
        out = []
        for proc in self.procs:
            name = os.path.basename(proc.args[0])  # type: ignore[index]
            try:
                with open(os.path.join(self.home, name + ".log"), "rb") as log:
                    text = log.read()[-600:].decode(errors="replace").strip()
            except OSError:
                continue
            out.append(f"\n{name} (exit {proc.poll()}): {text}")
        return "".join(out)

    def _session(self) -> Any:
        """A new WebDriver session on the running MiniBrowser (retried while the driver and
        the browser's inspector are still starting)."""
        from selenium import webdriver
        from selenium.webdriver.common.proxy import Proxy, ProxyType
        from selenium.webdriver.remote.client_config import ClientConfig
        from selenium.webdriver.remote.remote_connection import RemoteConnection
        from selenium.webdriver.webkitgtk.options import Options

        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 3 * TIMEOUT
        while True:
            try:
                config = ClientConfig(url, timeout=int(6 * TIMEOUT),
                                      proxy=Proxy({"proxyType": ProxyType.DIRECT}))
                return webdriver.Remote(command_executor=RemoteConnection(client_config=config),
                                        options=Options())
            except Exception as error:  # noqa: BLE001 - refused (not listening yet), …
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    raise EngineError(f"no WebDriver session on MiniBrowser: {error}"
                                      + self._logs()) from None
                time.sleep(0.1)

    def use(self, tab: WebKitTab) -> Any:
        """The driver, switched to ``tab`` (classic WebDriver has one current window)."""
        if self.current is not tab:
            self.driver.switch_to.window(tab.handle)
            self.current = tab
        return self.driver

    def _new_tab(self, timeout: float) -> Tab:
        # a window per tab: every tab stays visible, none is throttled as a background tab
        if self.current is None:  # New Window needs a current window: the start-up one
            self.driver.switch_to.window(self.start_window)
        self.driver.switch_to.new_window("window")
        handle = self.driver.current_window_handle
        tab = WebKitTab(self, handle, f"altws-tab-{next(self.marks)}")
        self.current = tab
        self.driver.execute_script("window.name = arguments[0];", tab.marker)
        return tab

    def web_process(self, tab: WebKitTab) -> int:
        """The WebKitWebProcess that renders ``tab``. WebDriver does not tell, so the tab
        keeps its process busy for a moment: the one that spent CPU time is it (the others
        idle; a loaded machine slows the busy one, it does not wake the idle ones)."""
        candidates = [pid for pid in _descendants(self.minibrowser.pid)
                      if _comm(pid).startswith("WebKitWebProc")]
        spent: list[Any] = []
        for _attempt in range(3):
            before = {pid: _cpu_ticks(pid) for pid in candidates}
            tab.evaluate("() => { const end = Date.now() + 400; while (Date.now() < end) {} }")
            spent = sorted(((_cpu_ticks(pid) - before[pid], pid) for pid in candidates),
                           reverse=True)
            if spent and spent[0][0] >= 3 and (len(spent) == 1
                                               or spent[0][0] >= 4 * spent[1][0] + 2):
                return int(spent[0][1])
        raise EngineError(f"cannot tell which web process renders the tab: {spent}")

    def crash(self, tab: WebKitTab) -> None:
        from selenium.common.exceptions import WebDriverException

        _kill(self.web_process(tab))
        # WebKit now ends the session (asynchronously); then a new one takes over the pages
        _wait(lambda: not self._session_alive(), TIMEOUT, step=0.05)
        old = self.driver
        self.driver, self.current = self._session(), None
        try:
            old.quit()
        except WebDriverException:
            pass
        found: dict[str, str] = {}
        spare: list[str] = []
        for handle in self.driver.window_handles:
            self.driver.switch_to.window(handle)
            try:
                name = self.driver.execute_script("return window.name;")
            except WebDriverException:
                name = None
            if isinstance(name, str) and name.startswith("altws-tab-"):
                found[name] = handle
            else:
                spare.append(handle)  # the start-up window, the new session's, the dead tab
        self.start_window = spare.pop(0) if spare else ""
        for handle in spare:
            self.driver.switch_to.window(handle)
            self.driver.close()
        for other in self.tabs:
            if other is not tab and not other.closed:
                if other.marker not in found:
                    raise EngineError(f"tab {other.marker} not found again after the crash")
                other.handle = found[other.marker]

    def _session_alive(self) -> bool:
        from selenium.common.exceptions import WebDriverException

        try:
            return self.driver.window_handles is not None  # raises once the browser is gone
        except WebDriverException:
            return False

    def _shutdown(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001 - it is going anyway
                pass
        for proc in reversed(self.procs):
            _killpg(proc)
        self.xvfb.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- entry points

_BROWSERS = {"chromium": ChromiumBrowser, "firefox": FirefoxBrowser, "webkit": WebKitBrowser}


def launch(engine: str) -> Browser:
    """A fresh browser of ``engine`` ("chromium", "firefox" or "webkit") with one profile."""
    return _BROWSERS[engine]()


class Engine:
    """One engine, as the tests' ``engine`` fixture hands it out: ``launch()`` a browser
    with a fresh profile of its own, or use the ``shared()`` one for tests that only need a
    tab of their own (it is started once and relaunched only if it died)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._shared: Browser | None = None

    def __repr__(self) -> str:
        return f"Engine({self.name!r})"

    @property
    def version(self) -> str:
        return version(self.name)

    def launch(self) -> Browser:
        return launch(self.name)

    def shared(self) -> Browser:
        if self._shared is None or self._shared.closed:
            self._shared = launch(self.name)
        return self._shared

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None


def missing(engine: str) -> str | None:
    """What is missing on this machine to drive ``engine`` (None: nothing)."""
    needs = {"chromium": [CHROMIUM], "firefox": [FIREFOX],
             "webkit": [WEBKIT_DRIVER, minibrowser() or MINIBROWSER_GLOB, XVFB]}[engine]
    absent = [path for path in needs if not (os.path.exists(path) or shutil.which(path))]
    return ", ".join(absent) or None


def version(engine: str) -> str:
    """The engine's version, as its Debian package installs it."""
    if engine == "chromium":
        return _version([CHROMIUM, "--version"])
    if engine == "firefox":
        return _version([FIREFOX, "--version"])
    # MiniBrowser --version wants a display: ask the package that ships it instead
    return _version(["dpkg-query", "-W", "-f=${Version}", "libwebkit2gtk-4.1-0"])
