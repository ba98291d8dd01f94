"""The TypeScript declarations of the browser client (static/altwebsocket.d.ts) describe the
API as apps use it: correct code compiles under --strict, misuse is refused."""

from __future__ import annotations

import os
import subprocess

import pytest

from ..support import ROOT

DECLARATIONS = os.path.join(ROOT, "static", "altwebsocket.d.ts")

GOOD = f"""/// <reference path="{DECLARATIONS}" />
const ws = new AltWebSocket("/chat", true, ["v1"]);
const auto = new AltWebSocket("ws://127.0.0.1:8001/chat");
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send("hello");
ws.onmessage = (event: MessageEvent) => console.log(event.data, event.origin);
ws.addEventListener("close", (event: CloseEvent) => console.log(event.code, event.wasClean));
if (ws.readyState === AltWebSocket.OPEN && ws.bufferedAmount === 0) {{
  ws.send(new Uint8Array([1, 2]));
  ws.send(new Blob(["x"]));
}}
const transport: string = ws.transport;
const protocol: string = auto.protocol + auto.extensions + auto.url;
ws.close(1000, "bye");
"""

BAD = f"""/// <reference path="{DECLARATIONS}" />
const ws = new AltWebSocket("/chat", true);
ws.send(42);
ws.close("not a code");
const state: string = ws.readyState;
"""


def tsc(tmp_path, source: str) -> subprocess.CompletedProcess:
    path = os.environ.get("ALTWS_TSC", "")
    if not path or not os.access(path, os.X_OK):
        message = "ALTWS_TSC does not name a tsc (bash tests/run.sh installs TypeScript)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    file = tmp_path / "use.ts"
    file.write_text(source)
    return subprocess.run([path, "--noEmit", "--strict", "--lib", "es2020,dom", str(file)],
                          capture_output=True, text=True, timeout=120)


def test_correct_use_type_checks(tmp_path) -> None:
    result = tsc(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_misuse_is_refused(tmp_path) -> None:
    result = tsc(tmp_path, BAD)
    assert result.returncode != 0
    assert result.stdout.count("error TS") >= 3, result.stdout
