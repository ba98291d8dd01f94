"""What one CGI ``/send`` spends, step by step: ``python -m benchmarks.cgicost``.

Runs the shipped ``cgi-bin/altws.cgi`` as Apache would (a new process, the CGI environment,
the body on stdin), with the CGI's own Python (Debian's ``/usr/bin/python3`` in a venv, as
``altws cgi-server`` builds it), outside Apache so that only the process is measured. Each
step is a process that does a little more than the one before; the steps are run in turn,
round after round, so that they share the machine's moments (medians of ``--rounds``):

1. ``python3 -c pass`` with ``site``: the bare CGI request's interpreter (the reference);
2. ``python3 -S -c pass``: the interpreter alone;
3. ``+ imports``: what ``altws.cgi`` imports for a ``/send``;
4. ``+ settings, storage open``: the INI read, the server made, the schema checked;
5. ``/send`` through ``altws.cgi -S``: the whole request (parse, transaction, commit, answer);
6. the same ``/send`` without ``-S`` (what ``site`` costs a request).

docs/performance.md ("What a CGI request spends") reports one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["main", "measure"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMPORTS = ("import altwebsocket.transports.http.cgi, altwebsocket.server, "
           "altwebsocket.transports.http.wsgi, altwebsocket.apps.echo, altwebsocket.apps.chat")
OPEN = ("from altwebsocket.config import load_settings; "
        "from altwebsocket.server import AltWebSocketServer; "
        "s = AltWebSocketServer(settings=load_settings({ini!r})); "
        "s.storage.ensure_schema()")


def _environ(method: str, path: str, length: int) -> dict[str, str]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "/cgi-bin/altws.cgi",
            "CONTENT_LENGTH": str(length), "CONTENT_TYPE": "application/json",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1", "QUERY_STRING": "",
            "PATH": "/usr/bin:/bin"}


def _run(argv: list[str], body: bytes = b"", path: str = "/echo/send") -> bytes:
    done = subprocess.run(argv, input=body, capture_output=True,
                          env=_environ("POST", path, len(body)), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-400:]}")
    return done.stdout


def measure(rounds: int = 40, log: object = print) -> list[dict[str, float | str]]:
    """The steps' medians (ms) and what each adds, from one run."""
    from altwebsocket.cgiserver import cgi_python

    python = cgi_python("/var/tmp/altws")
    work = tempfile.mkdtemp(prefix="altws-cgicost-")
    try:
        lib = os.path.join(work, "lib")
        shutil.copytree(os.path.join(ROOT, "app", "altwebsocket"),
                        os.path.join(lib, "altwebsocket"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([python, "-m", "compileall", "-q", lib], check=True)
        ini = os.path.join(work, "altws.ini")
        with open(ini, "w", encoding="utf-8") as out:
            out.write(f"[altws]\ndata = {os.path.join(work, 'data')}\nmax_rate = 0\n")
        os.makedirs(os.path.join(work, "data"))
        source = open(os.path.join(ROOT, "cgi-bin", "altws.cgi"), encoding="utf-8").read()
        source = source.replace('#   sys.path.insert(0, "/home/me/altwebsocket/app")',
                                f"sys.path.insert(0, {lib!r})")
        script = os.path.join(work, "altws.cgi")
        with open(script, "w", encoding="utf-8") as out:
            out.write(source)
        answer = _run([python, script], b"{}", "/echo/new")  # creates the tables, once
        conn = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        seq = [0]

        def send(*flags: str) -> None:
            seq[0] += 1
            body = json.dumps({"id": conn["id"], "token": conn["token"], "seq": seq[0],
                               "data": "x"}).encode()
            out = _run([python, *flags, script], body)
            if not out.startswith(b"Status: 200"):
                raise RuntimeError(f"/send answered {out[:200]!r}")

        path = f"import sys; sys.path.insert(0, {lib!r}); "
        steps: list[tuple[str, object]] = [
            ("python3 -c pass (site: the bare CGI's interpreter)",
             lambda: _run([python, "-c", "pass"])),
            ("python3 -S -c pass (the interpreter alone)",
             lambda: _run([python, "-S", "-c", "pass"])),
            ("+ the imports of a /send", lambda: _run([python, "-S", "-c", path + IMPORTS])),
            ("+ settings read, storage opened, schema checked",
             lambda: _run([python, "-S", "-c", path + IMPORTS + "; " + OPEN.format(ini=ini)])),
            ("a whole /send (altws.cgi, python3 -S)", lambda: send("-S")),
            ("a whole /send without -S (site)", lambda: send()),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _ in steps}
        for number in range(rounds):
            for name, step in steps:
                started = time.perf_counter()
                step()  # type: ignore[operator]
                samples[name].append((time.perf_counter() - started) * 1000)
            if log and (number + 1) % 10 == 0:
                log(f"  {number + 1}/{rounds} rounds")  # type: ignore[operator]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows: list[dict[str, float | str]] = []
    previous = None
    for name, _ in steps:
        median = statistics.median(samples[name])
        added = median - previous if previous is not None and name.startswith("+") else None
        rows.append({"step": name, "median_ms": round(median, 2),
                     "adds_ms": round(added, 2) if added is not None else ""})
        previous = median
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cgicost",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be positive")
    rows = measure(args.rounds, log=lambda line: print(line, file=sys.stderr))
    bare = float(rows[0]["median_ms"])
    print(f"{'step':<52} {'median ms':>10} {'adds':>7} {'/ bare':>7}")
    for row in rows:
        adds = f"{row['adds_ms']:+.2f}" if row["adds_ms"] != "" else ""
        print(f"{row['step']:<52} {row['median_ms']:>10.2f} {adds:>7} "
              f"{float(row['median_ms']) / bare:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
