#!/usr/bin/env python3
# AltWebSocket as a CGI script. Upload this file with altws.ini beside it (mode 755, LF line
# endings). Set the first line to a Python 3 the web server can run: the python3 of a venv
# where altwebsocket is installed (see docs/deploy-shared-hosting.md).
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# If altwebsocket is not installed in that Python, name the folder holding it here:
#   sys.path.insert(0, "/home/me/altwebsocket/app")

from altwebsocket.transports.http.cgi import run  # noqa: E402

run(os.path.join(HERE, "altws.ini"))
