"""cPanel "Setup Python App" (Phusion Passenger) entry point for AltWebSocket.

Passenger imports this file and serves the WSGI callable ``application``. It runs one
request at a time per Python process, so each open event stream holds a whole process:
keep ``max_streams`` (in altws.ini) below the number of processes your plan allows, and
streams short (``stream_lifetime``), so clients rotate through processes.

Place this file and ``altws.ini`` (see deploy/apache-cgi/altws.ini) in the application
root that cPanel created, and ``pip install altwebsocket`` into its virtualenv.
"""

import os

from altwebsocket import AltWebSocketServer, WSGIApp, load_settings

HERE = os.path.dirname(os.path.abspath(__file__))
settings = load_settings(os.path.join(HERE, "altws.ini"))
application = WSGIApp(AltWebSocketServer(settings=settings))
