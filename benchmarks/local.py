"""``python -m benchmarks`` (``altws bench --local``): every transport set up on this machine
and measured in one run.

What runs, each server in its own process, all on 127.0.0.1:

- a bare ``websockets`` echo server (:mod:`.servers`): the floor for native in Python;
- ``altws daemon`` (native WebSocket) and ``altws serve --no-daemon`` (the emulation on the
  persistent WSGI server), sharing one data folder;
- ``altws cgi-server``'s Apache (:class:`~altwebsocket.cgiserver.CGIServer`) serving the CGI
  deployment, plus a no-op CGI script of Debian's ``/usr/bin/python3`` in the same
  ``cgi-bin`` (the cost of starting the interpreter through the same Apache);
- headless Chromium driving the same echo apps (AltWebSocket emulated and native, and the
  browser's own WebSocket against the bare server).

Then beyond round trips: throughput of one client, chat fan-out to N emulated (and native)
clients, connections held with a message a second each, memory per connection, and the
peak memory of one CGI stream process.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from altwebsocket.bench.cli import finish
from altwebsocket.bench.procedure import (
    PAPER,
    WARMUP,
    Progress,
    Series,
    bench_url,
    echo_rounds,
    format_ms,
    format_series_table,
)

from .servers import (
    LAB_FETCH,
    LAB_PAGE,
    LAB_TIMES,
    ServerProcess,
    free_port,
    peak_rss_kb,
    processes_running,
    rss_kb,
)

__all__ = ["Plan", "LocalReport", "run_local", "format_report", "command", "PEERS", "TARGETS",
           "BENCH_SETTINGS"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
"""The repository: the lab's own servers run from here as ``python -m benchmarks.servers``."""

NOOP_CGI = """#!/usr/bin/python3
# A bare python3 CGI request: read the body, answer a small JSON object. Nothing else.
import os, sys
sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))
sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n{}")
"""

# Every server of --local runs with these settings: the per-address connection cap (200)
# protects a public server but would measure itself here (500 and 1,000 clients on
# 127.0.0.1). Nothing else differs from the defaults — max_rate included (issue 14): 5,000
# messages/s with a burst of 10,000 on the persistent servers do not slow 10,000 echoes
# nor 10,000 messages sent at once; under CGI 100/s (burst 200) is above what one client
# doing round trips reaches there.
BENCH_SETTINGS: dict[str, str] = {"max_connections_per_ip": "0"}

# Issue 8: sequential echo in headless Chromium on this machine, median ms per round trip.
PEERS: dict[str, float] = {
    "native WebSocket to Node ws": 0.48,
    "Socket.IO (JS) websocket": 0.52,
    "Socket.IO (JS) polling": 3.83,
    "SockJS websocket": 0.54,
    "SockJS eventsource": 29.0,
    "SockJS xhr-streaming": 50.5,
    "python-socketio websocket": 0.52,
    "python-socketio polling": 2.08,
    "one bare fetch POST per echo": 1.97,
}

# The targets of issues 4, 5 and 8 (ratios of medians, or absolute figures).
TARGETS: dict[str, float] = {
    "daemon_vs_bare": 2.0,
    "emulation_vs_native_chromium": 5.0,
    "cgi_vs_bare_cgi": 1.5,  # issue 15 (issue 5 asked for 2)
    "crowd_p99_ms": 3000.0,
    "fanout_500_p99_ms": 100.0,
    "fanout_1000_p99_ms": 100.0,  # issue 14, emulated (altws serve) and native (daemon)
    "cgi_stream_peak_mb": 30.0,
    # issue 17: the emulated echo costs one POST (issue 12 asked for 1.3)
    "emulation_vs_fetch_same_server": 1.1,
    # issue 17: below Socket.IO's long-polling, measured beside it in the same run
    "emulation_vs_socketio_polling": 1.0,
}


@dataclass
class Plan:
    """The sizes of one ``--local`` run (``quick()`` for tests)."""

    rounds: list[int] = field(default_factory=lambda: [100, 1000, 10000])
    cgi_rounds: list[int] = field(default_factory=lambda: [100, 1000])
    size: int = 4
    throughput_messages: int = 10000
    cgi_throughput_messages: int = 1000
    fanout_clients: list[int] = field(default_factory=lambda: [10, 100, 500, 1000])
    fanout_messages: int = 20
    native_fanout_clients: list[int] = field(default_factory=lambda: [100, 1000])
    # the same over wire version 2, each client a session of its own, as browsers open them
    session_fanout_clients: list[int] = field(default_factory=lambda: [100, 1000])
    hold_clients: list[int] = field(default_factory=lambda: [100, 250, 500])
    hold_seconds: float = 10.0
    # issue 14: idle emulated connections held by one altws serve (streams carry heartbeats)
    idle_clients: list[int] = field(default_factory=lambda: [5000])
    idle_seconds: float = 20.0  # more than a heartbeat (15 s)
    idle_echo_rounds: int = 500  # another client's echo, before they open and while held
    # the shared-host crowd (issue 15): clients beyond the stream slots poll
    crowd_clients: int = 12
    crowd_slots: int = 3
    crowd_messages: int = 10
    browser: bool = True
    cgi: bool = True
    databases: bool = True
    extras: bool = True

    @classmethod
    def quick(cls) -> Plan:
        """Tiny sizes: every part runs, in well under a minute."""
        return cls(rounds=[5, 10], cgi_rounds=[3], throughput_messages=50,
                   cgi_throughput_messages=10, fanout_clients=[3], fanout_messages=2,
                   native_fanout_clients=[3], session_fanout_clients=[3], hold_clients=[3],
                   hold_seconds=2.0,
                   idle_clients=[3], idle_seconds=1.0, idle_echo_rounds=10,
                   crowd_clients=4, crowd_slots=1, crowd_messages=2)


@dataclass
class LocalReport:
    """Everything one run measured (``to_json()`` is what ``--json`` writes)."""

    plan: Plan
    machine: dict[str, Any] = field(default_factory=dict)
    echo: list[Series] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    fanout: list[dict[str, Any]] = field(default_factory=list)
    fanout_native: list[dict[str, Any]] = field(default_factory=list)
    fanout_sessions: list[dict[str, Any]] = field(default_factory=list)
    hold: list[dict[str, Any]] = field(default_factory=list)
    idle: list[dict[str, Any]] = field(default_factory=list)
    crowd: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    # the server's own time per request of altws serve during the Chromium turns, by route
    # (benchmarks.servers.RouteTimes): where an emulated echo's time goes beyond a bare POST's
    server_times: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def series(self, key: str) -> Series | None:
        """The echo series named ``key``, if measured."""
        for one in self.echo:
            if one.key == key and one.all_samples():
                return one
        return None

    def ratios(self) -> list[dict[str, Any]]:
        """Ratios of medians (ms per round trip) with their targets and the paper's."""
        paper = PAPER["emulation"][10000] / PAPER["websocket"][10000]
        rows = [
            ("daemon / bare websockets", "daemon", "bare-websockets", "python",
             TARGETS["daemon_vs_bare"], None),
            ("AltWebSocket native / browser WebSocket", "chromium-native",
             "chromium-websocket", "chromium", TARGETS["daemon_vs_bare"], None),
            ("emulation / our native", "emulation", "daemon", "python", None, paper),
            ("emulation / our native", "chromium-emulation", "chromium-native", "chromium",
             TARGETS["emulation_vs_native_chromium"], paper),
            ("CGI emulation / bare python3 CGI", "emulation-cgi", "cgi-bare", "python",
             TARGETS["cgi_vs_bare_cgi"], None),
            ("CGI emulation / bare python3 CGI", "chromium-emulation-cgi", "cgi-bare",
             "chromium", TARGETS["cgi_vs_bare_cgi"], None),
            ("Passenger emulation / bare python3 CGI", "emulation-passenger", "cgi-bare",
             "python", None, None),
            ("shared session / one stream per socket", "chromium-emulation",
             "chromium-emulation-v1", "chromium", 1.0, None),
            ("session in a SharedWorker / in the tab", "chromium-emulation-worker",
             "chromium-emulation", "chromium", None, None),
            ("session in a SharedWorker / bare fetch POST, same server",
             "chromium-emulation-worker", "chromium-fetch-serve", "chromium", None, None),
            ("emulation / one bare fetch POST", "chromium-emulation", "chromium-fetch",
             "chromium", 1.2, None),
            ("emulation / bare fetch POST, same server", "chromium-emulation",
             "chromium-fetch-serve", "chromium", TARGETS["emulation_vs_fetch_same_server"],
             None),
            ("emulation / raw SSE + fetch echo", "chromium-emulation", "chromium-sse-raw",
             "chromium", None, None),
            ("one stream per socket / bare fetch POST, same server", "chromium-emulation-v1",
             "chromium-fetch-serve", "chromium", None, None),
            # against Socket.IO's faster case: the same bytes sent as text (ours: binary)
            ("emulation / Socket.IO long-polling (text)", "chromium-emulation",
             "chromium-socketio-polling-text", "chromium",
             TARGETS["emulation_vs_socketio_polling"], None),
            ("emulation / Socket.IO long-polling (binary)", "chromium-emulation",
             "chromium-socketio-polling", "chromium", None, None),
            ("one stream per socket / Socket.IO long-polling (text)", "chromium-emulation-v1",
             "chromium-socketio-polling-text", "chromium", None, None),
            ("Socket.IO long-polling (text) / one bare fetch POST",
             "chromium-socketio-polling-text", "chromium-fetch", "chromium", None, None),
            ("emulation on PostgreSQL / on SQLite", "emulation-postgresql", "emulation",
             "python", None, None),
            ("emulation on MariaDB / on SQLite", "emulation-mariadb", "emulation", "python",
             None, None),
            ("emulation on PostgreSQL / on SQLite", "chromium-emulation-postgresql",
             "chromium-emulation", "chromium", None, None),
            ("emulation on MariaDB / on SQLite", "chromium-emulation-mariadb",
             "chromium-emulation", "chromium", None, None),
        ]
        out = []
        for name, top, bottom, client, target, paper_ratio in rows:
            upper, lower = self.series(top), self.series(bottom)
            if upper is None or lower is None:
                continue
            above, below = upper.median(), lower.median()
            value = above / below if below else float("nan")
            out.append({"name": name, "client": client, "numerator": top,
                        "denominator": bottom, "numerator_median_ms": round(above, 4),
                        "denominator_median_ms": round(below, 4),
                        "ratio": round(value, 3), "target": target,
                        "paper": round(paper_ratio, 2) if paper_ratio else None,
                        "meets_target": None if target is None else bool(value <= target)})
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "version": 1, "kind": "local", "machine": self.machine, "plan": asdict(self.plan),
            "seconds": round(self.seconds, 1),
            "echo": [one.to_json() for one in self.echo], "ratios": self.ratios(),
            "throughput": self.throughput, "fanout": self.fanout,
            "fanout_native": self.fanout_native, "fanout_sessions": self.fanout_sessions,
            "hold": self.hold, "idle": self.idle,
            "crowd": self.crowd,
            "memory": self.memory, "server_times": self.server_times,
            "paper": {name: {str(k): v for k, v in figures.items()}
                      for name, figures in PAPER.items()},
            "peers_chromium_median_ms": PEERS, "targets": TARGETS,
            "errors": self.errors, "skipped": self.skipped,
        }


def machine_info() -> dict[str, Any]:
    """Where and when: CPUs, load average, Python, platform, the command line."""
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = []
    program = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if program == os.path.join(HERE, "__main__.py"):
        line = " ".join(["python -m benchmarks"] + sys.argv[1:])
    elif os.path.basename(program) in ("altws", "__main__.py"):
        line = " ".join(["altws"] + sys.argv[1:])
    else:
        line = ""
    return {"when": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpus": os.cpu_count(),
            "load_average": load, "python": platform.python_version(),
            "platform": platform.platform(), "command": line}


# -- the pieces ---------------------------------------------------------------------------------


def _server_times(url: str, reset: bool = False) -> dict[str, Any]:
    """The server's own time per request of the lab's ``altws serve`` at ``url``, by route
    (``GET /_lab/times``, :class:`benchmarks.servers.RouteTimes`); ``reset``: and start again."""
    import json
    from urllib.request import urlopen

    with urlopen(url + LAB_TIMES + ("?reset=1" if reset else ""), timeout=10) as answer:
        times: dict[str, Any] = json.loads(answer.read())  # (not 200: HTTPError)
    return times


SERVER_ROUTES = (("S/send", "S/send, a shared session's send (in the tab, in a SharedWorker)"),
                 ("B/send", "B/send, one stream per socket's send"),
                 ("trivial route", "the trivial route, POST /_lab/fetch"))
"""How :func:`format_report` names the routes of :attr:`LocalReport.server_times`."""


def format_server_times(times: dict[str, Any]) -> list[str]:
    """The section of the report on the server's own time per request (none if not timed)."""
    rows = [(label, times[name]) for name, label in SERVER_ROUTES if name in times]
    if not rows:
        return []
    width = max(len(label) for label, _ in rows)
    out = ["The server's own time per request (altws serve, during the Chromium turns; the "
           "WSGI call,",
           "from dispatch to answer: an S/send writes its echo to the stream within it)",
           f"  {'route':<{width}}  {'requests':>8}   wall µs median / p90   thread CPU µs "
           "median / p90"]
    for label, row in rows:
        wall, cpu = row["wall_us"], row["cpu_us"]
        out.append(f"  {label:<{width}}  {row['count']:>8,}   {wall['median']:>8,.0f} / "
                   f"{wall['p90']:<8,.0f}      {cpu['median']:>8,.0f} / {cpu['p90']:,.0f}")
    return out + [""]


def _bare_cgi(url: str, rounds: list[int], size: int, quiet: bool) -> Series:
    """POST a few random bytes to the no-op python3 CGI, one request at a time."""
    series = Series("cgi-bare", "bare python3 no-op CGI (Apache)", "python", "http")
    host = url.split("//", 1)[1].split("/", 1)[0]
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=10)

    def post(payload: bytes) -> None:
        conn.request("POST", path, body=payload,
                     headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the no-op CGI answered {response.status}")
        post.answer = payload  # type: ignore[attr-defined]  # post() keeps the last answer

    try:
        for count in rounds:
            progress = None if quiet else Progress(f"{series.label[:36]} x{count}", count)
            echo_rounds(post, lambda timeout: post.answer,  # type: ignore[attr-defined]
                        WARMUP, size)
            total, samples = echo_rounds(post,
                                         lambda timeout: post.answer,  # type: ignore[attr-defined]
                                         count, size, progress)
            series.add(count, total, samples)
            if progress is not None:
                progress.finish(f"{total:,.0f} ms")
    except Exception as exc:  # recorded for the table
        series.error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return series


def _throughput(url: str, transport: str, messages: int, size: int, label: str
                ) -> dict[str, Any]:
    """One client sends ``messages`` as fast as it can, then reads every echo."""
    from altwebsocket.client import connect

    posts = [0]

    def count(line: str) -> None:
        if line.startswith("> POST") and "/send" in line:
            posts[0] += 1

    emulate = transport == "emulation"
    result: dict[str, Any] = {"label": label, "transport": transport, "messages": messages,
                              "size": size}
    client = connect(url, emulate=emulate, debug=count if emulate else None, timeout=10)
    try:
        echo_rounds(client.send, client.recv, WARMUP, size)
        posts[0] = 0
        payloads = [os.urandom(size) for _ in range(messages)]
        started = time.perf_counter()
        for payload in payloads:
            client.send(payload)
        for payload in payloads:
            if client.recv(30) != payload:
                raise ValueError("an echo differs or came out of order")
        seconds = time.perf_counter() - started
    finally:
        client.close(1000)
    result.update({"seconds": round(seconds, 4),
                   "messages_per_s": round(messages / seconds, 1)})
    if emulate:
        result["posts"] = posts[0]
    return result


def _cgi_stream_peak(url: str, fragment: str, size: int) -> dict[str, Any]:
    """Peak RSS (VmHWM) of the CGI process serving one emulated stream, after some echoes."""
    from altwebsocket.client import connect

    before = set(processes_running(fragment))
    client = connect(url, emulate=True, timeout=10)
    try:
        echo_rounds(client.send, client.recv, 20, size)
        pids = [pid for pid in processes_running(fragment) if pid not in before]
        peaks = {pid: peak_rss_kb(pid) for pid in pids}
        peaks = {pid: peak for pid, peak in peaks.items() if peak}
    finally:
        client.close(1000)
    if not peaks:
        return {"error": "no CGI stream process found"}
    return {"cgi_stream_peak_rss_mb": round(max(peaks.values()) / 1024, 1),
            "processes_seen": len(peaks)}


def _write_config(folder: str, settings: dict[str, str]) -> str:
    """``folder/altws.ini`` with ``settings`` in its ``[altws]`` section; its path."""
    config = os.path.join(folder, "altws.ini")
    with open(config, "w", encoding="utf-8") as out:
        out.write("[altws]\n" + "".join(f"{name} = {value}\n"
                                         for name, value in settings.items()))
    return config


def _echo_median(url: str, rounds: int) -> float | None:
    """The median ms of ``rounds`` emulated echoes from the Python client (``None``: failed)."""
    from altwebsocket.bench.procedure import bench_url

    series = bench_url(url, "emulation", [rounds], 4, quiet=True)
    return None if series.error else round(series.median(), 3)


def _idle(clients: int, seconds: float, rounds: int = 500) -> dict[str, Any]:
    """``clients`` idle emulated connections on an ``altws serve`` of their own, sized for
    them (``--streams``, ``max_streams``), opened in waves; its memory per connection, and
    an emulated echo of another client on it (``rounds`` round trips) before they open and
    while they are held."""
    from .loadgen import idle_emulated

    data = tempfile.mkdtemp(prefix="altws-bench-idle-")
    config = _write_config(data, {**BENCH_SETTINGS, "max_streams": str(clients + 100)})
    serve = ServerProcess([sys.executable, "-m", "altwebsocket", "serve", "--port", "0",
                           "--no-daemon", "--streams", str(clients + 100), "--data", data,
                           "--config", config], cwd=ROOT, keep=200, timeout=60)
    try:
        alone = _echo_median(serve.url + "/echo", rounds)
        memory = _rss_reader(serve.pid, clients, "serve")

        def after_open() -> dict[str, Any]:  # (the memory first: the echo allocates)
            return {**memory(), "echo_alone_ms": alone,
                    "echo_while_held_ms": _echo_median(serve.url + "/echo", rounds)}

        return asyncio.run(idle_emulated(serve.url + "/echo", clients, seconds,
                                         after_open=after_open))
    finally:
        serve.stop()
        shutil.rmtree(data, ignore_errors=True)


def _rss_reader(pid: int, clients: int, key: str) -> Callable[[], dict[str, Any]]:
    base = rss_kb(pid)

    def read() -> dict[str, Any]:
        now = rss_kb(pid)
        return {f"{key}_rss_before_mb": round(base / 1024, 1),
                f"{key}_rss_mb": round(now / 1024, 1),
                f"{key}_kb_per_connection": round((now - base) / max(1, clients), 1)}

    return read


# -- the run ------------------------------------------------------------------------------------


def run_local(plan: Plan, quiet: bool = False, log: Callable[[str], None] = print
              ) -> LocalReport:
    """Set everything up, measure, tear everything down; never raises for a failed part
    (it is listed in ``errors``)."""
    report = LocalReport(plan=plan, machine=machine_info())
    started = time.monotonic()
    altws = [sys.executable, "-m", "altwebsocket"]
    data = tempfile.mkdtemp(prefix="altws-bench-")
    procs: list[ServerProcess] = []
    cgi: Any = None
    cgi_data = ""
    browser: Any = None

    names: dict[int, str] = {}
    dead: dict[int, str] = {}

    def check_alive(phase: str) -> None:
        """Record a server that stopped (crashed, or killed from outside) during ``phase``."""
        for proc in procs:
            ended = proc.exited()
            if ended is not None and proc.pid not in dead:
                dead[proc.pid] = ended
                report.errors.append(f"{names[proc.pid]} stopped during {phase}: {ended}")
                log(f"altws bench: {names[proc.pid]} stopped during {phase}: {ended}")

    def attempt(what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as exc:  # one failed part must not stop the others
            report.errors.append(f"{what}: {type(exc).__name__}: {exc}")
            log(f"altws bench: {what} failed: {exc}")
            return None
        finally:
            check_alive(what)

    try:
        log("starting: bare websockets echo, altws daemon, altws serve ...")
        config = _write_config(data, BENCH_SETTINGS)
        bare = _start([sys.executable, "-m", "benchmarks.servers"])
        procs.append(bare)
        http_echo = _start([sys.executable, "-m", "benchmarks.servers", "http-echo"])
        procs.append(http_echo)
        serve_port, daemon_port = free_port(), free_port()
        daemon = _start(altws + ["daemon", "--port", str(daemon_port), "--data", data,
                                 "--config", config,
                                 "--allow-origin", f"http://127.0.0.1:{serve_port}"])
        procs.append(daemon)
        # altws serve plus one trivial route, POST /_lab/fetch (benchmarks.servers.altws_serve)
        serve = _start([sys.executable, "-m", "benchmarks.servers", "altws-serve",
                        "--port", str(serve_port), "--no-daemon", "--streams", "1100",
                        "--data", data, "--config", config, "--websocket-url", daemon.url])
        procs.append(serve)
        names.update({bare.pid: "the bare websockets server", daemon.pid: "altws daemon",
                      http_echo.pid: "the bare HTTP echo server",
                      serve.pid: "altws serve"})
        if plan.cgi:
            cgi, cgi_data = attempt("starting Apache CGI", _start_cgi) or (None, "")
            if cgi is None:
                report.skipped.append("CGI: Apache did not start (see errors)")
        else:
            report.skipped.append("CGI: --no-cgi")

        # 1. the paper's procedure with the Python client
        report.echo.append(_relabel(bench_url(bare.url + "/echo", "native", plan.rounds,
                                              plan.size, quiet=quiet,
                                              label="bare websockets echo server"),
                                    "bare-websockets"))
        report.echo.append(_relabel(bench_url(daemon.url + "/echo", "native", plan.rounds,
                                              plan.size, quiet=quiet,
                                              label="altws daemon (native)"), "daemon"))
        report.echo.append(_relabel(bench_url(serve.url + "/echo", "emulation", plan.rounds,
                                              plan.size, quiet=quiet,
                                              label="emulation, altws serve (waitress)"),
                                    "emulation"))
        if cgi is not None:
            cgi_echo = f"{cgi.url}/cgi-bin/altws.cgi/echo"
            report.echo.append(_relabel(bench_url(cgi_echo, "emulation", plan.cgi_rounds,
                                                  plan.size, quiet=quiet,
                                                  label="emulation, Apache CGI"),
                                        "emulation-cgi"))
            report.echo.append(_bare_cgi(f"{cgi.url}/cgi-bin/noop.cgi", plan.cgi_rounds,
                                         plan.size, quiet))
            peak = attempt("CGI stream memory",
                           lambda: _cgi_stream_peak(cgi_echo, cgi.run_dir, plan.size))
            if peak:
                report.memory.update(peak)
            _shared_hosts(plan, report, quiet, attempt, log)

        check_alive("the echo round trips")

        # 2. the same from headless Chromium
        if plan.browser:
            from .browser import BrowserBench, BrowserRun, BrowserUnavailable

            try:
                browser = BrowserBench()
            except BrowserUnavailable as exc:
                report.skipped.append(f"Chromium: {exc}")
                log(f"altws bench: skipping the browser: {exc}")
            peer = None
            if browser is not None:
                from .peers import PeerUnavailable, start_socketio

                try:
                    peer = start_socketio(log=log)
                    procs.append(peer)
                    names[peer.pid] = "the Socket.IO peer"
                except (PeerUnavailable, RuntimeError, OSError,
                        subprocess.SubprocessError) as exc:
                    report.skipped.append(f"Socket.IO long-polling: {exc}")
            if browser is not None:
                page = serve.url + LAB_PAGE  # a blank HTML page of serve's origin
                runs = [
                    ("chromium-fetch", "Chromium fetch POST → bare HTTP echo",
                     http_echo.url + "/", http_echo.url + "/", "fetch", "http", plan.rounds),
                    ("chromium-sse-raw", "Chromium EventSource + fetch → bare HTTP echo",
                     http_echo.url + "/", http_echo.url + "/sse", "sse", "http", plan.rounds),
                    ("chromium-fetch-serve", "Chromium fetch POST → trivial route of serve",
                     page, serve.url + LAB_FETCH, "fetch", "http", plan.rounds),
                    ("chromium-websocket", "Chromium WebSocket → bare websockets",
                     page, bare.url + "/echo", "websocket", "native", plan.rounds),
                    ("chromium-native", "Chromium AltWebSocket native (daemon)",
                     page, serve.url + "/echo", "native", "native", plan.rounds),
                    ("chromium-emulation", "Chromium AltWebSocket emulation, shared session "
                     "in the tab (serve)", page, serve.url + "/echo", "emulation", "emulation",
                     plan.rounds),
                    ("chromium-emulation-worker", "Chromium AltWebSocket emulation, shared "
                     "session in a SharedWorker (serve)", page, serve.url + "/echo",
                     "emulation-worker", "emulation", plan.rounds),
                    ("chromium-emulation-v1", "Chromium AltWebSocket emulation, one stream "
                     "per socket (serve)", page, serve.url + "/echo", "emulation-v1",
                     "emulation", plan.rounds),
                ]
                if peer is not None:  # the best-known peer's fallback, from its own page
                    runs.append(("chromium-socketio-polling",
                                 "Chromium Socket.IO 4 long-polling (Node)", peer.url + "/",
                                 peer.url, "socketio", "http", plan.rounds))
                    runs.append(("chromium-socketio-polling-text",
                                 "Chromium Socket.IO 4 long-polling, as hex text",
                                 peer.url + "/", peer.url, "socketio-text", "http",
                                 plan.rounds))
                if cgi is not None:
                    runs.append(("chromium-emulation-cgi",
                                 "Chromium AltWebSocket emulation (CGI)", cgi.url + "/",
                                 f"{cgi.url}/cgi-bin/altws.cgi/echo", "emulation",
                                 "emulation", plan.cgi_rounds))
                # in turns (BrowserBench.measure_interleaved): load on this shared machine
                # falls on every setup alike, and the ratios between them hold
                attempt("the server's times", lambda: _server_times(serve.url, reset=True))
                measured = browser.measure_interleaved(
                    [BrowserRun(*run) for run in runs], plan.size, quiet)
                report.server_times = attempt(
                    "the server's times", lambda: _server_times(serve.url)) or {}
                for run, series in zip(runs, measured):
                    if series.error:  # once more, alone, in a fresh page; both errors kept
                        key, label, page_url, target, mode, transport, rounds = run
                        log(f"altws bench: {label}: {series.error}; once more")
                        first = series.error
                        series = browser.measure(page_url, target, mode, rounds, plan.size,
                                                 key, label, transport, quiet)
                        report.skipped.append(f"{label}: first attempt failed ({first}); "
                                              f"second: {series.error or 'measured'}")
                    report.echo.append(series)
                browser.close()
                browser = None
        else:
            report.skipped.append("Chromium: --no-browser")
        check_alive("the browser round trips")
        for one in report.echo:
            if one.error:
                report.errors.append(f"{one.label}: {one.error}")

        # 3. the same echo with the storage on PostgreSQL and on MariaDB
        if plan.databases:
            _on_databases(plan, report, config, quiet, attempt, log)
        else:
            report.skipped.append("PostgreSQL, MariaDB: --no-databases")

        if plan.extras:
            _extras(plan, report, serve, daemon, cgi, attempt, log)
    finally:
        if browser is not None:
            browser.close()
        for proc in reversed(procs):
            proc.stop()
        if cgi is not None:
            if any("CGI" in error for error in report.errors):
                tail = [line for line in cgi.error_log().splitlines() if line.strip()][-6:]
                report.errors.extend(f"Apache error log: {line[:300]}" for line in tail)
            cgi.stop()
        shutil.rmtree(data, ignore_errors=True)
        if cgi_data:
            shutil.rmtree(cgi_data, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report


ENGINES = (("postgresql", "PostgreSQL"), ("mariadb", "MariaDB"))


def _on_databases(plan: Plan, report: LocalReport, config: str, quiet: bool,
                  attempt: Callable[[str, Callable[[], Any]], Any],
                  log: Callable[[str], None]) -> None:
    """The emulated echo (Python client, and Chromium's shared session) through ``altws
    serve --storage URL`` on a private PostgreSQL and a private MariaDB of this machine
    (:mod:`.databases`: Debian's packages, each server on 127.0.0.1, removed afterwards)."""
    from . import databases

    for key, name in ENGINES:
        absent = databases.missing(key)
        if absent:
            report.skipped.append(f"{name}: not installed ({absent})")
            continue
        log(f"starting: {name} and altws serve on it ...")
        kind = databases.PostgreSQL if key == "postgresql" else databases.MariaDB
        server = attempt(f"starting {name}", kind().start)
        if server is not None:
            try:
                _on_database(plan, report, config, quiet, attempt, key, name, server.url())
            finally:
                server.stop()


def _on_database(plan: Plan, report: LocalReport, config: str, quiet: bool,
                 attempt: Callable[[str, Callable[[], Any]], Any], key: str, name: str,
                 url: str) -> None:
    data = tempfile.mkdtemp(prefix=f"altws-bench-{key}-")
    args = [sys.executable, "-m", "benchmarks.servers", "altws-serve", "--port", "0",
            "--no-daemon", "--data", data, "--config", config, "--storage", url]
    serve = attempt(f"starting altws serve on {name}", lambda: _start(args))
    try:
        if serve is None:
            return
        report.echo.append(_relabel(bench_url(
            serve.url + "/echo", "emulation", plan.rounds, plan.size, quiet=quiet,
            label=f"emulation, altws serve on {name}"), f"emulation-{key}"))
        if plan.browser:
            attempt(f"Chromium on {name}",
                    lambda: _chromium_echo(plan, report, serve.url, key, name, quiet))
    finally:
        if serve is not None:
            serve.stop()
        shutil.rmtree(data, ignore_errors=True)


def _chromium_echo(plan: Plan, report: LocalReport, url: str, key: str, name: str,
                   quiet: bool) -> None:
    from .browser import BrowserBench, BrowserUnavailable

    try:
        browser = BrowserBench()
    except BrowserUnavailable as exc:
        report.skipped.append(f"Chromium on {name}: {exc}")
        return
    try:
        report.echo.append(browser.measure(
            url + LAB_PAGE, url + "/echo", "emulation", plan.rounds, plan.size,
            f"chromium-emulation-{key}",
            f"Chromium AltWebSocket emulation, shared session (serve on {name})", "emulation",
            quiet))
    finally:
        browser.close()


def _start(args: list[str]) -> ServerProcess:
    """A server of the run, started from the repository, its last 200 output lines kept."""
    return ServerProcess(args, cwd=ROOT, keep=200)


def _relabel(series: Series, key: str) -> Series:
    series.key = key
    return series


def _start_cgi() -> tuple[Any, str]:
    """The CGI deployment under Apache, with ``noop.cgi`` beside ``altws.cgi``."""
    from altwebsocket.cgiserver import CGIServer

    os.makedirs("/var/tmp/altws", mode=0o755, exist_ok=True)
    cgi_data = tempfile.mkdtemp(prefix="bench-data-", dir="/var/tmp/altws")
    os.chmod(cgi_data, 0o755)
    server = CGIServer(cgi_data, port=0, settings=dict(BENCH_SETTINGS))
    try:
        server.prepare()
        noop = os.path.join(server.run_dir, "htdocs", "cgi-bin", "noop.cgi")
        with open(noop, "w", encoding="utf-8") as out:
            out.write(NOOP_CGI)
        os.chmod(noop, 0o755)
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(cgi_data, ignore_errors=True)
        raise
    return server, cgi_data


def _shared_hosts(plan: Plan, report: LocalReport, quiet: bool,
                  attempt: Callable[[str, Callable[[], Any]], Any],
                  log: Callable[[str], None]) -> None:
    """What the shared-host routes give when the stream slots run out: a crowd of
    EventSource-like chat clients on a few slots under Apache CGI and under Apache +
    Passenger (cPanel's "Setup Python App"), and the echo under Passenger."""
    from altwebsocket.cgiserver import CGIServer, PassengerServer, require_passenger
    from altwebsocket.exceptions import ConfigError

    from .loadgen import crowd_emulated

    settings = dict(BENCH_SETTINGS, max_streams=str(plan.crowd_slots), share_after="5")
    kinds: list[tuple[str, Any]] = [("cgi", CGIServer)]
    try:
        require_passenger()
        kinds.append(("passenger", PassengerServer))
    except ConfigError as exc:
        report.skipped.append(f"Passenger: {exc}")
    for kind, server_class in kinds:
        data = tempfile.mkdtemp(prefix="bench-data-", dir="/var/tmp/altws")
        os.chmod(data, 0o755)
        extra = {"pool": plan.crowd_slots + 5} if kind == "passenger" else {}
        server = server_class(data, port=0, settings=settings, **extra)
        try:
            log(f"shared host ({kind}): {plan.crowd_clients} chat clients on "
                f"{plan.crowd_slots} stream slots ...")
            started = attempt(f"starting {kind} for the crowd",
                              lambda: (server.prepare(), server.start()))  # noqa: B023
            if started is None:
                continue
            base = server.url + ("/cgi-bin/altws.cgi" if kind == "cgi" else "")
            if kind == "passenger":
                report.echo.append(_relabel(bench_url(
                    base + "/echo", "emulation", plan.cgi_rounds, plan.size, quiet=quiet,
                    label="emulation, Apache + Passenger"), "emulation-passenger"))
            got = attempt(f"crowd under {kind}", lambda: asyncio.run(crowd_emulated(
                base + "/chat", plan.crowd_clients, plan.crowd_messages)))  # noqa: B023
            if got:
                got.update({"deployment": kind, "slots": plan.crowd_slots})
                report.crowd.append(got)
        finally:
            server.stop()
            shutil.rmtree(data, ignore_errors=True)


def _extras(plan: Plan, report: LocalReport, serve: ServerProcess, daemon: ServerProcess,
            cgi: Any, attempt: Callable[[str, Callable[[], Any]], Any],
            log: Callable[[str], None]) -> None:
    """Throughput, fan-out, held connections, memory per connection."""
    from altwebsocket.cli import raise_open_file_limit

    from .loadgen import fanout_emulated, fanout_native, hold_emulated

    most = max([0] + plan.fanout_clients + plan.native_fanout_clients + plan.hold_clients
               + plan.idle_clients + plan.session_fanout_clients)
    raise_open_file_limit(2 * most + 512)  # this process holds a socket per client

    log("throughput: one client sending as fast as it can ...")
    # attempt() calls each lambda at once, inside its loop iteration: the loop variables it
    # reads are the current ones (ruff B023 warns of lambdas called later).
    for url, transport, messages, label in (
            (daemon.url + "/echo", "native", plan.throughput_messages, "altws daemon (native)"),
            (serve.url + "/echo", "emulation", plan.throughput_messages,
             "emulation, altws serve"),
            (f"{cgi.url}/cgi-bin/altws.cgi/echo" if cgi else "", "emulation",
             plan.cgi_throughput_messages, "emulation, Apache CGI")):
        if not url:
            continue
        got = attempt(f"throughput {label}",
                      lambda: _throughput(url, transport, messages, plan.size, label))  # noqa: B023
        if got:
            report.throughput.append(got)
    for clients in plan.fanout_clients:
        log(f"chat fan-out: {clients} emulated clients ...")
        got = attempt(f"fan-out to {clients} emulated clients", lambda: asyncio.run(
            fanout_emulated(serve.url + "/chat", clients, plan.fanout_messages,  # noqa: B023
                            after_open=_rss_reader(serve.pid, clients, "serve"))))  # noqa: B023
        if got:
            report.fanout.append(got)
    for clients in plan.session_fanout_clients:
        log(f"chat fan-out: {clients} emulated clients in sessions (version 2) ...")
        got = attempt(f"fan-out to {clients} sessions", lambda: asyncio.run(
            fanout_emulated(serve.url + "/chat", clients, plan.fanout_messages,  # noqa: B023
                            after_open=_rss_reader(serve.pid, clients, "serve"),  # noqa: B023
                            sessions=True)))
        if got:
            report.fanout_sessions.append(got)
    for clients in plan.native_fanout_clients:
        log(f"chat fan-out: {clients} native clients ...")
        got = attempt(f"fan-out to {clients} native clients", lambda: asyncio.run(
            fanout_native(daemon.url + "/chat", clients, plan.fanout_messages,  # noqa: B023
                          after_open=_rss_reader(daemon.pid, clients, "daemon"))))  # noqa: B023
        if got:
            report.fanout_native.append(got)
    for clients in plan.hold_clients:
        log(f"held connections: {clients} emulated clients, one message a second each ...")
        got = attempt(f"holding {clients} emulated connections", lambda: asyncio.run(
            hold_emulated(serve.url + "/echo", clients, plan.hold_seconds,  # noqa: B023
                          after_open=_rss_reader(serve.pid, clients, "serve"))))  # noqa: B023
        if got:
            report.hold.append(got)
    for clients in plan.idle_clients:
        log(f"idle connections: {clients} emulated clients held by one altws serve ...")
        got = attempt(f"holding {clients} idle emulated connections",
                      lambda: _idle(clients, plan.idle_seconds,  # noqa: B023
                                    plan.idle_echo_rounds))
        if got:
            report.idle.append(got)
    if report.fanout:
        last = report.fanout[-1]
        report.memory["serve_kb_per_emulated_connection"] = last.get("serve_kb_per_connection")
        report.memory["serve_connections_measured"] = last["clients"]
    if report.fanout_native:
        last = report.fanout_native[-1]
        report.memory["daemon_kb_per_native_connection"] = last.get("daemon_kb_per_connection")
        report.memory["daemon_connections_measured"] = last["clients"]


# -- the command -------------------------------------------------------------------------------


def command(args: Any, rounds: list[int] | None) -> int:
    """``altws bench --local`` / ``python -m benchmarks``, with arguments that
    :mod:`altwebsocket.bench.cli` parsed and checked; the exit status."""
    plan = Plan.quick() if args.quick else Plan()
    if rounds:
        plan.rounds = rounds
        plan.cgi_rounds = [count for count in rounds if count <= 1000] or [min(rounds)]
    plan.size = args.size
    plan.browser = not args.no_browser
    plan.cgi = not args.no_cgi
    plan.databases = not getattr(args, "no_databases", False)
    plan.extras = not args.no_extras

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    report = run_local(plan, quiet=args.quiet, log=log)
    print(format_report(report))
    status = finish(args, report.echo, report.to_json(),
                    f"AltWebSocket echo round trips on this machine "
                    f"(load {' '.join(map(str, report.machine.get('load_average', [])))})")
    return 1 if report.errors or status else 0


# -- the printed report -------------------------------------------------------------------------


def _times(value: float) -> str:
    return "-" if value != value else f"{value:.2f}×"


def format_report(report: LocalReport) -> str:
    """The whole report as text: the echo table, ratios, the paper, then the extras."""
    plan = report.plan
    machine = report.machine
    out = [f"altws bench --local   {machine.get('when', '')}   {machine.get('cpus')} CPUs, "
           f"load average {' '.join(map(str, machine.get('load_average', [])))}, "
           f"Python {machine.get('python')}",
           "",
           f"Echo round trips: the paper's procedure ({plan.size} random bytes, wait for "
           f"the echo, repeat; a fresh connection per round count)",
           format_series_table(report.echo, plan.rounds),
           ""]
    ratios = report.ratios()
    if ratios:
        out.append("Ratios of medians (ms per round trip)")
        width = max(len(f"{r['name']} ({r['client']})") for r in ratios)
        for row in ratios:
            target = f"target ≤ {row['target']:g}×" if row["target"] else ""
            verdict = "" if row["meets_target"] is None else (
                "  met" if row["meets_target"] else "  MISSED")
            paper = f"   paper: {row['paper']:g}×" if row["paper"] else ""
            out.append(f"  {row['name'] + ' (' + row['client'] + ')':<{width}}  "
                       f"{_times(row['ratio']):>8}   {target}{verdict}{paper}")
        out.append("")
    out.extend(format_server_times(report.server_times))
    out.append("Against the paper's Table 3 (total ms; paper: PHP + Ratchet, gigabit Ethernet)")
    for paper_key, ours_key, name in (("websocket", "daemon", "WebSocket"),
                                      ("emulation", "emulation", "SSE + POST, persistent"),
                                      ("emulation", "emulation-cgi", "SSE + POST, CGI")):
        ours = report.series(ours_key)
        if ours is None:
            continue
        cells = []
        for count, paper_total in PAPER[paper_key].items():
            if count in ours.totals:
                cells.append(f"{count:,}: {format_ms(ours.totals[count])} vs "
                             f"{format_ms(paper_total)} ({paper_total / ours.totals[count]:.1f}× "
                             f"faster)")
        if cells:
            out.append(f"  {name:<24} " + "; ".join(cells))
        else:
            out.append(f"  {name:<24} no round count in common with the paper (100, 1,000, "
                       f"10,000)")
    out.append("")
    if report.throughput:
        out.append("Throughput: one client sending as fast as it can (echo app)")
        for row in report.throughput:
            posts = f" in {row['posts']} POSTs" if "posts" in row else ""
            out.append(f"  {row['label']:<28} {row['messages']:>6} messages{posts}: "
                       f"{row['messages_per_s']:>9,.0f} messages/s")
        out.append("")
    for title, rows, memory_key in (
            ("Chat fan-out: one message to N emulated clients (altws serve)", report.fanout,
             "serve_kb_per_connection"),
            ("Chat fan-out: one message to N browsers' sessions (version 2, altws serve)",
             report.fanout_sessions, "serve_kb_per_connection"),
            ("Chat fan-out: one message to N native clients (altws daemon)",
             report.fanout_native, "daemon_kb_per_connection")):
        if not rows:
            continue
        out.append(title)
        for row in rows:
            latency = row["latency_ms"]
            goal = TARGETS.get(f"fanout_{row['clients']}_p99_ms")
            p99 = latency.get("p99", float("nan"))
            verdict = "" if goal is None else (
                f"  target p99 <= {goal:g} ms  "
                f"{'met' if row['lost'] == 0 and p99 <= goal else 'MISSED'}")
            out.append(f"  N={row['clients']:<5} connected {row['connected']:<5} "
                       f"p50 {format_ms(latency.get('median', float('nan'))):>7} ms  "
                       f"p99 {format_ms(p99):>7} ms  "
                       f"lost {row['lost']}  "
                       f"memory {row.get(memory_key, '-')} KB/connection{verdict}")
        out.append("")
    if report.hold:
        out.append("Held emulated connections, one echo a second each (altws serve)")
        for row in report.hold:
            latency = row["latency_ms"]
            out.append(f"  {row['clients']:<5} connected {row['connected']:<5} "
                       f"sent {row['sent']:<6} lost {row['lost']:<4} "
                       f"errors {row['http_errors']:<3} "
                       f"p50 {format_ms(latency.get('median', float('nan'))):>7} ms  "
                       f"p99 {format_ms(latency.get('p99', float('nan'))):>7} ms  "
                       f"memory {row.get('serve_kb_per_connection', '-')} KB/connection"
                       f"  {'held' if row.get('held') else 'NOT held'}")
        held = [row["clients"] for row in report.hold if row.get("held")]
        out.append(f"  held (nothing lost or refused, p99 < 1 s): up to "
                   f"{max(held) if held else 0} of {max(r['clients'] for r in report.hold)} "
                   f"tried")
        out.append("")
    if report.idle:
        out.append("Idle emulated connections held by one altws serve (heartbeats only; "
                   "then one echo each)")
        for row in report.idle:
            out.append(f"  {row['clients']:<5} connected {row['connected']:<5} "
                       f"opened in {row['open_s']:.1f} s  held {row['seconds']:g} s  "
                       f"dropped {row['streams_dropped']}  answered {row['answered']}  "
                       f"memory {row.get('serve_kb_per_connection', '-')} KB/connection  "
                       f"{'held' if row.get('held') else 'NOT held'}")
            alone, held_ms = row.get("echo_alone_ms"), row.get("echo_while_held_ms")
            if alone and held_ms:
                out.append(f"        another client's emulated echo, median: "
                           f"{format_ms(held_ms)} ms while they are held, "
                           f"{format_ms(alone)} ms before they opened "
                           f"({held_ms / alone:.2f}x)")
        out.append("")
    if report.crowd:
        out.append("Shared host, more clients than stream slots: chat clients behaving like "
                   "EventSource, one message every 0.5 s (beyond the slots, clients poll)")
        for row in report.crowd:
            latency, answers = row["latency_ms"], row["answers"]
            p99 = latency.get("p99", float("nan"))
            verdict = "met" if row["lost"] == 0 and p99 <= TARGETS["crowd_p99_ms"] else "MISSED"
            out.append(f"  {row['deployment']:<10} {row['clients']} clients on {row['slots']} "
                       f"slots: lost {row['lost']} of {row['clients'] * row['messages']}  "
                       f"p50 {format_ms(latency.get('median', float('nan'))):>7} ms  "
                       f"p99 {format_ms(p99):>7} ms  longest wait told "
                       f"{row['max_told_ms']} ms  polls {answers['poll']}  "
                       f"refused {answers['refused']}  target p99 <= "
                       f"{TARGETS['crowd_p99_ms']:,.0f} ms  {verdict}")
        out.append("")
    if report.memory:
        out.append("Memory")
        for name, value in report.memory.items():
            out.append(f"  {name}: {value}")
        out.append("")
    out.append("Peers in headless Chromium (issue 8, measured earlier on this machine; "
               "median ms per echo)")
    out.append("  " + "; ".join(f"{name} {value:g}" for name, value in PEERS.items()))
    for note in report.skipped:
        out.append(f"skipped: {note}")
    for error in report.errors:
        out.append(f"error: {error}")
    out.append(f"({report.seconds:.0f} s)")
    return "\n".join(out)
