"""The CGI rule (``transports/http/cgi.py``): a CGI request imports nothing costly — not even
the standard library's ``json`` (which imports ``re``), ``socket``, ``signal``, ``enum`` or
``sqlite3``'s Python part: their C modules do the work (``_json``, ``_socket``, ``_signal``,
``_sqlite3``; see ``altwebsocket/_lazy.py``)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from ..support import ROOT

FORBIDDEN = ["flask", "werkzeug", "sqlalchemy", "typing", "logging", "dataclasses", "wsgiref",
             "asyncio", "websockets", "waitress", "json", "re", "socket", "selectors", "signal",
             "enum", "sqlite3", "datetime", "contextlib", "threading"]

PROBE = """
import sys
import altwebsocket.transports.http.cgi
import altwebsocket.apps.echo, altwebsocket.apps.chat
print(repr(sorted(sys.modules)))
"""


def loaded_by_the_cgi_entry() -> set:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = os.path.join(ROOT, "app")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, timeout=30, check=True).stdout
    return set(ast.literal_eval(out))


def test_the_cgi_entry_imports_none_of_the_costly_modules() -> None:
    loaded = loaded_by_the_cgi_entry()
    assert "altwebsocket.transports.http.cgi" in loaded
    found = sorted(name for name in loaded if name.split(".")[0] in FORBIDDEN)
    assert found == []


def test_a_whole_cgi_request_imports_none_of_them(tmp_path) -> None:
    """Serve a real ``/info`` and ``/new`` through ``run()`` and look at what was loaded."""
    ini = tmp_path / "altws.ini"
    ini.write_text(f"[altws]\ndata = {tmp_path / 'data'}\n")
    (tmp_path / "data").mkdir()
    # the first request of a fresh install creates the tables (SQLAlchemy, once)
    script = f"""
import os, sys
os.environ.update(REQUEST_METHOD="POST", PATH_INFO="/echo/new", CONTENT_LENGTH="2",
                  SERVER_NAME="127.0.0.1", SERVER_PORT="80", SERVER_PROTOCOL="HTTP/1.1")
import io
sys.stdin = io.TextIOWrapper(io.BytesIO(b"{{}}"))
from altwebsocket.transports.http.cgi import run
run({str(ini)!r})
sys.stdout.flush()
sys.stderr.write(repr(sorted(sys.modules)))
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = os.path.join(ROOT, "app")
    first = subprocess.run([sys.executable, "-c", script], capture_output=True,
                           text=True, env=env, timeout=60)
    assert first.stdout.startswith("Status: 200"), first.stdout + first.stderr
    second = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, env=env, timeout=60)
    assert second.stdout.startswith("Status: 200"), second.stdout + second.stderr
    assert '"token"' in second.stdout
    loaded = set(ast.literal_eval(second.stderr.strip().splitlines()[-1]))
    assert "altwebsocket.transports.http.wsgi" in loaded  # it really served the request
    found = sorted(name for name in loaded if name.split(".")[0] in FORBIDDEN)
    assert found == []
