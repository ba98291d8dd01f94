#!/usr/bin/env python3
# AltWebSocket host self-test. Upload next to altws.cgi (mode 755, LF line endings), set the
# first line to the same Python as altws.cgi, and open it in a browser:
#     https://your-host/cgi-bin/altws-selftest.cgi
# It needs only Python's standard library. Delete it when you are done.
#
#   ?stream=1&gap=S   an SSE stream: one timestamped event every S seconds (default 1), then
#                     silence growing 5, 10, 20, 40, 80 s to find the host's idle cut-off
#   ?report=1         JSON: Python and SQLite versions, the data folder's filesystem, whether
#                     WAL is safe there, CGI environment facts, and the stream ceiling: the
#                     process limit this account has, how many processes it runs now, and
#                     the max_streams altws.ini sets (beyond it, clients poll)
#   (nothing)         an HTML page that runs both and shows what it learnt
import json
import os
import platform
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def setting(name):
    """The value of ``name`` in the [altws] section of altws.ini next to this script."""
    found = None
    try:
        section = ""
        for raw in open(os.path.join(HERE, "altws.ini"), encoding="utf-8"):
            line = raw.strip()
            if line.startswith("["):
                section = line.strip("[]").strip()
            elif section == "altws" and "=" in line and line.split("=", 1)[0].strip() == name:
                found = line.split("=", 1)[1].split(" ;")[0].strip()
    except OSError:
        pass
    return found


def data_folder():
    """The data folder named in altws.ini next to this script, else the script's folder."""
    value = setting("data")
    folder = HERE if not value else value if os.path.isabs(value) else os.path.join(HERE, value)
    return os.path.normpath(folder)


def stream_ceiling():
    """How many streams may be held at once here, as far as a script can tell."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        limit = None if soft == resource.RLIM_INFINITY else soft
    except (ImportError, OSError, ValueError):
        limit = None
    uid, running = os.getuid(), 0
    try:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.stat("/proc/" + pid).st_uid == uid:
                        running += 1
                except OSError:
                    pass
    except OSError:
        running = None
    configured = setting("max_streams")
    max_streams = int(configured) if configured and configured.isdigit() else 12
    ceiling = {
        "max_streams": max_streams,
        "max_streams_from": "altws.ini" if configured else "the CGI default",
        "process_limit": limit,  # RLIMIT_NPROC (CloudLinux "NPROC"); None: unlimited
        "processes_now": running,  # this account's processes, this script included
        # CloudLinux's entry-process limit (EP, often 20) is not visible to a script: read it
        # in cPanel's "Resource Usage" page; every held stream is one entry process.
        "entry_processes": "not visible to a script: see cPanel's Resource Usage page",
    }
    if limit and max_streams > limit // 2:
        ceiling["advice"] = ("max_streams is more than half the process limit: lower it so "
                             "the POSTs and polls find processes")
    else:
        ceiling["advice"] = ("keep max_streams a few below your entry processes (EP); "
                             "beyond it, clients poll instead of holding a stream")
    return ceiling


def filesystem(path):
    best, kind = "", "unknown"
    try:
        real = os.path.realpath(path)
        for line in open("/proc/mounts"):
            parts = line.split()
            mount = parts[1]
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def report():
    folder = data_folder()
    kind = filesystem(folder)
    network = kind in ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "glusterfs",
                       "fuse.glusterfs", "ceph", "lustre", "gpfs")
    writable = os.access(folder, os.W_OK) if os.path.isdir(folder) else False
    wal = None
    if writable:
        probe = os.path.join(folder, ".altws-selftest.db")
        try:
            db = sqlite3.connect(probe)
            wal = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            db.close()
        except sqlite3.Error as exc:
            wal = "error: %s" % exc
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(probe + suffix)
            except OSError:
                pass
    under_root = folder.startswith(os.environ.get("DOCUMENT_ROOT", "/nonexistent") + "/")
    return {
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "user": os.getuid(),
        "data_folder": folder,
        "data_folder_exists": os.path.isdir(folder),
        "data_folder_writable": writable,
        "data_folder_in_web_root": under_root,
        "filesystem": kind,
        "wal_safe": (not network) and wal == "wal",
        "journal_advice": "wal" if (not network and wal == "wal") else "delete",
        "server_software": os.environ.get("SERVER_SOFTWARE", ""),
        "gateway": os.environ.get("GATEWAY_INTERFACE", ""),
        "https": os.environ.get("HTTPS", ""),
        "no_gzip_env": os.environ.get("no-gzip", os.environ.get("no_gzip", "")),
        "altwebsocket_importable": _importable(),
        "stream_ceiling": stream_ceiling(),
    }


def _importable():
    try:
        import altwebsocket  # noqa: F401
        return True
    except ImportError:
        return False


def stream(gap):
    out = sys.stdout.buffer
    out.write(b"Content-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\n"
              b"X-Accel-Buffering: no\r\n\r\nretry: 100000\n\n: selftest\n\n")
    out.flush()
    start = time.time()
    for number in range(1, 11):
        out.write(("id: %d\ndata: %s\n\n" % (number, json.dumps(
            {"n": number, "sent": time.time(), "phase": "steady"}))).encode())
        out.flush()
        time.sleep(gap)
    for number, silence in enumerate((5, 10, 20, 40, 80), 11):
        time.sleep(silence)
        out.write(("id: %d\ndata: %s\n\n" % (number, json.dumps(
            {"n": number, "sent": time.time(), "phase": "idle", "silence": silence}))).encode())
        out.flush()
    out.write(b"event: done\ndata: {}\n\n")
    out.flush()
    del start


PAGE = """<!doctype html><meta charset=utf-8><title>AltWebSocket host self-test</title>
<meta name=viewport content="width=device-width,initial-scale=1">
<style>body{font:15px system-ui,sans-serif;max-width:50em;margin:1em auto;padding:0 1em}
pre{background:#f4f4f4;padding:.5em;overflow:auto}.bad{color:#b00}.ok{color:#070}</style>
<h1>AltWebSocket host self-test</h1>
<h2>Host facts</h2><pre id=report>loading…</pre>
<h2>Streaming</h2><p id=verdict>Streaming 10 events one second apart, then silences of
5, 10, 20, 40 and 80 s (about 3 minutes)…</p><pre id=log></pre>
<script>
fetch("?report=1").then(r => r.json()).then(j => {
  document.getElementById("report").textContent = JSON.stringify(j, null, 2);
});
const log = document.getElementById("log"), verdict = document.getElementById("verdict");
const arrivals = [];
const es = new EventSource("?stream=1&gap=1");
es.onmessage = (e) => {
  const d = JSON.parse(e.data), now = Date.now() / 1000;
  arrivals.push(now);
  log.textContent += `#${d.n} ${d.phase}${d.silence ? " after " + d.silence + " s" : ""}: ` +
    `delay ${((now - d.sent) * 1000).toFixed(0)} ms\\n`;
  if (d.n === 10) {
    const spread = arrivals[9] - arrivals[0];
    verdict.innerHTML = spread < 3 ? "<b class=bad>Buffered</b>: the first 10 events " +
      "arrived together. Something (gzip, a proxy, FastCGI) holds the stream; see " +
      "docs/deploy-shared-hosting.md." : "<b class=ok>Streams</b>: events arrive one by one. " +
      "Now measuring the idle cut-off…";
  }
};
es.addEventListener("done", () => { verdict.innerHTML += " <b class=ok>No idle cut-off " +
  "up to 80 s.</b>"; es.close(); });
es.onerror = () => { if (arrivals.length >= 10) { verdict.innerHTML += " <b class=bad>" +
  "The connection was cut during a silence</b>: keep stream_lifetime and heartbeat well " +
  "under the last silence that passed."; es.close(); } };
</script>
"""

if __name__ == "__main__":
    query = os.environ.get("QUERY_STRING", "")
    params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
    if "report" in params:
        body = json.dumps(report(), indent=2).encode()
        sys.stdout.buffer.write(b"Content-Type: application/json\r\nCache-Control: no-store\r\n"
                                b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif "stream" in params:
        try:
            stream(max(0.1, min(10.0, float(params.get("gap", "1")))))
        except (BrokenPipeError, ValueError):
            pass
    else:
        body = PAGE.encode()
        sys.stdout.buffer.write(b"Content-Type: text/html; charset=utf-8\r\n"
                                b"Content-Length: %d\r\n\r\n" % len(body) + body)
