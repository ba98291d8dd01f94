"""cPanel "Setup Python App" (Phusion Passenger) entry point for AltWebSocket.

Passenger imports this file and serves the WSGI callable ``application`` (cPanel's
"Application startup file" ``passenger_wsgi.py``, "Application Entry point"
``application``). Place it and ``altws.ini`` (deploy/cpanel-passenger/altws.ini) in the
application root cPanel created, and ``pip install altwebsocket`` into the app's virtualenv.

**The pool is the stream ceiling.** Open-source Passenger gives a Python process one request
at a time, so every open event stream holds a whole process of the pool
(``PassengerMaxPoolSize``), and a POST that finds every process busy waits in Passenger's
queue until a stream ends. ``max_streams`` must therefore stay below the pool, leaving
processes for the POSTs. When ``altws.ini`` does not set it, this file asks Passenger for
the pool size when the process starts (Passenger's core answers a process about the apps of
its own user: ``GET /pool.xml`` on the instance's ``agents.s/core_api`` socket, ``<max>``,
and the app's own ``<max_processes>`` limit if any) and uses ``pool - 2``, at least 1; if
it cannot ask, 4 (Passenger's default pool of 6, minus 2). Set ``max_streams`` yourself if
your plan limits processes further (CloudLinux "entry processes").

**Buffering.** The app yields each SSE chunk and Passenger's WSGI loader sends each at once;
what holds a stream is mod_deflate (hosts compress ``text/event-stream`` too): add
deploy/cpanel-passenger/htaccess to the web root's ``.htaccess``.
"""

import os
import re
import socket
import sys  # noqa: F401 (for the sys.path line below)

# Without pip: upload the project's app/altwebsocket folder (e.g. to
# /home/me/altwebsocket/app/altwebsocket) and uncomment this line, pointed at its parent.
# sys.path.insert(0, "/home/me/altwebsocket/app")

from altwebsocket import AltWebSocketServer, WSGIApp, load_settings  # noqa: E402
from altwebsocket.config import read_ini  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "altws.ini")
DEFAULT_MAX_STREAMS = 4  # Passenger's default PassengerMaxPoolSize 6, minus 2


def passenger_pool_size(timeout=1.0):
    """The number of processes Passenger may run for this app, or None if it cannot tell.

    Passenger names its instance folder in the spawn arguments, which exist while the app is
    being loaded (``$PASSENGER_SPAWN_WORK_DIR/args/instance_dir``); its core's API socket
    there answers ``/pool.xml`` for the apps of the asking process's own user.
    """
    work = os.environ.get("PASSENGER_SPAWN_WORK_DIR")
    if not work:
        return None
    try:
        with open(os.path.join(work, "args", "instance_dir"), encoding="utf-8") as handle:
            instance = handle.read().strip()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as api:
            api.settimeout(timeout)
            api.connect(os.path.join(instance, "agents.s", "core_api"))
            api.sendall(b"GET /pool.xml HTTP/1.0\r\nHost: localhost\r\n\r\n")
            answer = b""
            while len(answer) < 1 << 22:
                chunk = api.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except (OSError, ValueError):
        return None
    text = answer.decode("utf-8", "replace")
    pool = re.search(r"<info[^>]*>.*?<max>(\d+)</max>", text, re.S)
    if not text.startswith("HTTP/1.") or " 200 " not in text.split("\r\n", 1)[0] or not pool:
        return None
    size = int(pool.group(1))
    per_app = re.search(r"<max_processes>(\d+)</max_processes>", text)
    if per_app and 0 < int(per_app.group(1)) < size:
        size = int(per_app.group(1))
    return size


def _max_streams():
    pool = passenger_pool_size()
    return DEFAULT_MAX_STREAMS if pool is None else max(1, pool - 2)


overrides = {}
if "max_streams" not in read_ini(CONFIG).get("altws", {}):
    overrides["max_streams"] = _max_streams()
settings = load_settings(CONFIG, **overrides)
application = WSGIApp(AltWebSocketServer(settings=settings))
