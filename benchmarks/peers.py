"""Peers measured beside the emulation in the same run: Socket.IO 4's long-polling.

``altws bench --local`` starts :file:`socketio_peer.js` with Node and the npm package
``socket.io``, and Chromium runs the same echo procedure against it with
``io(url, {transports: ["polling"]})`` (Socket.IO's fallback when WebSocket is not to be had,
which the emulation competes with). The package is looked for in ``$ALTWS_NODE_MODULES``,
then in the checkout's ``.venv/node/node_modules`` (where ``tests/run.sh`` installs it), then
in ``~/.cache/altwebsocket/bench-node``; if it is in none and ``npm`` exists, it is installed
there (one ``npm install``, a few seconds). Without Node the row is reported as skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .servers import ServerProcess

__all__ = ["SOCKETIO", "PeerUnavailable", "socketio_modules", "start_socketio"]

HERE = os.path.dirname(os.path.abspath(__file__))
SOCKETIO = "socket.io@4"
"""The npm package (and major version) of the peer."""
_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "altwebsocket", "bench-node")


class PeerUnavailable(RuntimeError):
    """The peer cannot run here (no Node, no package and no npm to install it)."""


def _has_socketio(modules: str) -> bool:
    return os.path.isfile(os.path.join(modules, "socket.io", "package.json"))


def socketio_modules(install: bool = True, log: object = None) -> str:
    """The ``node_modules`` folder holding ``socket.io``; installs it into the user's cache
    with npm when no known folder has it (``install=False``: raise instead)."""
    candidates = [os.environ.get("ALTWS_NODE_MODULES", ""),
                  os.path.join(os.path.dirname(HERE), ".venv", "node", "node_modules"),
                  os.path.join(_CACHE, "node_modules")]
    for modules in candidates:
        if modules and _has_socketio(modules):
            return modules
    npm = shutil.which("npm")
    if not install or npm is None:
        raise PeerUnavailable(f"the npm package {SOCKETIO} is not installed (set "
                              "ALTWS_NODE_MODULES, or install npm)")
    if callable(log):
        log(f"installing {SOCKETIO} with npm into {_CACHE} (once) ...")
    os.makedirs(_CACHE, exist_ok=True)
    done = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund",
                           "--prefix", _CACHE, SOCKETIO],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, check=False)
    modules = os.path.join(_CACHE, "node_modules")
    if done.returncode != 0 or not _has_socketio(modules):
        raise PeerUnavailable(f"npm install {SOCKETIO} failed: "
                              f"{(done.stderr or done.stdout).strip()[-300:]}")
    return modules


def start_socketio(log: object = None) -> ServerProcess:
    """The Socket.IO echo server (:file:`socketio_peer.js`) on 127.0.0.1; its ``url`` is
    its page's origin."""
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("no node on PATH")
    modules = socketio_modules(log=log)
    return ServerProcess([node, os.path.join(HERE, "socketio_peer.js"), modules],
                         cwd=HERE, keep=200)


if __name__ == "__main__":  # pragma: no cover - a manual check: start it, print the URL
    server = start_socketio(log=print)
    print(server.url, file=sys.stderr)
    try:
        server.proc.wait()
    finally:
        server.stop()
