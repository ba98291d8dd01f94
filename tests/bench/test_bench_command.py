"""``altws bench`` as a user runs it: against a URL (``altws serve`` with its daemon, the
emulation alone, a ws:// URL, an unreachable URL) and ``--local --quick``. Tiny round counts;
the assertions are on the output's structure, the JSON file and the exit status, never on
timings."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from ..support import ALTWS, TIMEOUT, NativeEcho, Site, serving


def bench(*argv: str, timeout: float = 20 * TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(ALTWS + ["bench", *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Site]:
    """The site ``altws serve`` serves, with the daemon beside it (advertised by /info)."""
    yield from serving(Site(str(tmp_path_factory.mktemp("bench-data")), daemon=True))


def rows(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()[3:] if line.strip()]


def test_url_both_transports(served, tmp_path) -> None:
    out = tmp_path / "figures.json"
    done = bench(served.url + "/echo", "--rounds", "3,5", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"altws bench {served.url}/echo")
    assert lines[1].split()[:3] == ["setup", "3", "5"]
    assert rows(done.stdout)[:2] == ["emulation", "native"]
    assert "paper, SSE + Ajax (total ms)" not in done.stdout  # 3 and 5 are not the paper's
    assert "emulation / native (medians):" in done.stdout
    assert "x5" in done.stderr  # the progress bar's final lines
    data = json.loads(out.read_text())
    assert data["kind"] == "url" and data["rounds"] == [3, 5] and data["size"] == 4
    assert [one["key"] for one in data["echo"]] == ["emulation", "native"]
    for one in data["echo"]:
        assert one["error"] is None
        assert set(one["runs"]) == {"3", "5"}
        assert len(one["runs"]["3"]["samples_ms"]) == 3
        assert len(one["runs"]["5"]["samples_ms"]) == 5
        assert one["runs"]["5"]["total_ms"] > 0
        assert one["summary"]["count"] == 8
        assert 0 < one["summary"]["median"] <= one["summary"]["p99"]
    assert data["paper"]["emulation"]["10000"] == 152115.0


def test_url_paper_round_count_and_size(served) -> None:
    done = bench(served.url + "/echo", "--transport", "emulation", "--rounds", "100",
                 "--size", "16", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(done.stdout) == ["emulation", "paper,"]
    assert "paper, SSE + Ajax (total ms): 100: 2,655" in done.stdout
    assert done.stderr == ""  # --quiet: no progress bar


def test_url_without_a_daemon_skips_native(tmp_path) -> None:
    site = Site(str(tmp_path))
    try:
        done = bench(site.url + "/echo", "--rounds", "2", "--quiet")
    finally:
        site.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: B/info advertises no native WebSocket (no daemon)" in done.stdout


def test_ws_url_of_a_bare_websockets_server(tmp_path) -> None:
    echo = NativeEcho()
    try:
        out = tmp_path / "ws.json"
        done = bench(echo.url, "--rounds", "4", "--json", str(out), "--quiet")
    finally:
        echo.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(done.stdout)[0] == "native"
    data = json.loads(out.read_text())
    assert [one["key"] for one in data["echo"]] == ["native"]
    assert len(data["echo"][0]["runs"]["4"]["samples_ms"]) == 4


def test_unreachable_url_exits_1(tmp_path) -> None:
    out = tmp_path / "none.json"
    done = bench("http://127.0.0.1:9/echo", "--transport", "emulation", "--rounds", "2",
                 "--json", str(out), "--quiet")
    assert done.returncode == 1
    assert "error: cannot connect:" in done.stdout
    data = json.loads(out.read_text())
    assert data["echo"][0]["error"].startswith("cannot connect:")
    assert data["echo"][0]["runs"] == {}


def _leftovers() -> set:
    folder = "/var/tmp/altws"
    if not os.path.isdir(folder):
        return set()
    return {name for name in os.listdir(folder) if name.startswith(("bench-data-", "altws-cgi-"))}


def test_local_quick(tmp_path) -> None:
    """Every part of --local at tiny sizes: the servers, Apache CGI beside a bare python3 CGI,
    Chromium when present, the extras; the report and the JSON have every section."""
    out = tmp_path / "local.json"
    argv = ["--local", "--quick", "--json", str(out)]
    plot = tmp_path / "local.png"
    try:
        import matplotlib  # noqa: F401
        argv += ["--plot", str(plot)]
    except ImportError:
        plot = None
    before = _leftovers()
    done = bench(*argv)
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    for heading in ("Echo round trips: the paper's procedure", "Ratios of medians",
                    "Against the paper's Table 3", "Throughput: one client",
                    "Chat fan-out: one message to N emulated clients",
                    "Chat fan-out: one message to N native clients",
                    "Held emulated connections", "Memory", "Peers in headless Chromium"):
        assert heading in text, heading
    for label in ("bare websockets echo server", "altws daemon (native)",
                  "emulation, altws serve (waitress)"):
        assert label in text
    assert "starting: bare websockets echo" in done.stderr
    data = json.loads(out.read_text())
    assert data["kind"] == "local" and data["errors"] == []
    assert data["machine"]["cpus"] and len(data["machine"]["load_average"]) == 3
    keys = {one["key"]: one for one in data["echo"]}
    for key in ("bare-websockets", "daemon", "emulation"):
        assert set(keys[key]["runs"]) == {"5", "10"}
        assert len(keys[key]["runs"]["10"]["samples_ms"]) == 10
    cgi = not any(note.startswith("CGI") for note in data["skipped"])
    if cgi:
        for key in ("emulation-cgi", "cgi-bare"):
            assert set(keys[key]["runs"]) == {"3"}
        assert data["memory"]["cgi_stream_peak_rss_mb"] > 0
        # the shared-host crowd: 4 clients on 1 slot under CGI and Passenger (run.sh installs it)
        assert set(keys["emulation-passenger"]["runs"]) == {"3"}
        crowd = {row["deployment"]: row for row in data["crowd"]}
        assert set(crowd) == {"cgi", "passenger"}
        for row in crowd.values():
            assert row["lost"] == 0 and row["answers"]["poll"] > 0, row
    for key in ("emulation-postgresql", "emulation-mariadb"):  # (tests/run.sh installs both)
        assert set(keys[key]["runs"]) == {"5", "10"} and keys[key]["error"] is None
    if not any(note.startswith("Chromium") for note in data["skipped"]):
        for key in ("chromium-fetch", "chromium-websocket", "chromium-native",
                    "chromium-emulation", "chromium-emulation-worker",
                    "chromium-emulation-v1", "chromium-fetch-serve",
                    "chromium-sse-raw", "chromium-emulation-postgresql",
                    "chromium-emulation-mariadb",
                    # Socket.IO's long-polling beside it (tests/run.sh installs socket.io)
                    "chromium-socketio-polling", "chromium-socketio-polling-text"):
            assert keys[key]["client"] == "chromium" and keys[key]["error"] is None
            assert len(keys[key]["runs"]["10"]["samples_ms"]) == 10
        # the server's own time per request, by route, from the lab's altws serve
        times = data["server_times"]
        assert set(times) == {"S/send", "B/send", "trivial route"}, times
        assert times["trivial route"]["count"] >= 10 and times["S/send"]["count"] >= 20
        for row in times.values():
            assert 0 < row["wall_us"]["median"] <= row["wall_us"]["p90"], row
        assert "The server's own time per request (altws serve" in text
    names = {(row["name"], row["client"]) for row in data["ratios"]}
    assert ("daemon / bare websockets", "python") in names
    assert ("emulation / our native", "python") in names
    if not any(note.startswith("Chromium") for note in data["skipped"]):
        assert ("session in a SharedWorker / in the tab", "chromium") in names
    if cgi:
        assert ("CGI emulation / bare python3 CGI", "python") in names
    assert [row["transport"] for row in data["throughput"]][:2] == ["native", "emulation"]
    assert all(row["messages_per_s"] > 0 for row in data["throughput"])
    assert data["throughput"][1]["posts"] >= 1
    for section in ("fanout", "fanout_sessions", "fanout_native", "hold"):
        row = data[section][0]
        assert row["clients"] == row["connected"] == 3 and row["lost"] == 0
        assert row["latency_ms"]["count"] > 0
    assert data["fanout"][0]["wire"] == 1 and data["fanout_sessions"][0]["wire"] == 2
    assert "browsers' sessions (version 2" in text
    idle = data["idle"][0]  # issue 14: idle connections on a serve of their own
    assert idle["clients"] == idle["connected"] == idle["answered"] == 3 and idle["held"]
    assert "Idle emulated connections held by one altws serve" in text
    assert idle["echo_alone_ms"] > 0 and idle["echo_while_held_ms"] > 0
    assert "another client's emulated echo, median" in text
    assert data["hold"][0]["sent"] == 6 and data["hold"][0]["http_errors"] == 0
    assert data["hold"][0]["held"] is True
    assert "held (nothing lost or refused, p99 < 1 s): up to 3 of 3 tried" in text
    assert "serve_kb_per_connection" in data["fanout"][0]
    assert "daemon_kb_per_connection" in data["fanout_native"][0]
    assert data["targets"]["cgi_stream_peak_mb"] == 30.0
    assert data["peers_chromium_median_ms"]["one bare fetch POST per echo"] == 1.97
    if plot is not None:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing left behind: the CGI data folder and Apache's run folder are removed
    assert _leftovers() <= before
