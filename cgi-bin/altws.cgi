#!/usr/bin/env python3
# AltWebSocket as a CGI script. Upload this file with altws.ini beside it (mode 755, LF line
# endings). Set the first line to a Python 3 the web server can run: the python3 of a venv
# where altwebsocket is installed, best with -S (see docs/deploy-shared-hosting.md), e.g.
#   #!/home/me/altws-venv/bin/python3 -S
import os
import sys

if sys.flags.no_site:
    # "python3 -S": Python skipped its site module (~1-2 ms of every request); the venv's
    # packages are put on the path here instead (its .pth files are not read).
    _venv = os.path.dirname(os.path.dirname(sys.executable))
    if os.path.exists(os.path.join(_venv, "pyvenv.cfg")):
        sys.path.append(os.path.join(_venv, "lib", "python%d.%d" % sys.version_info[:2],
                                     "site-packages"))

HERE = os.path.dirname(os.path.abspath(__file__))
# If altwebsocket is not installed in that Python, name the folder holding it here:
#   sys.path.insert(0, "/home/me/altwebsocket/app")

from altwebsocket.transports.http.cgi import run  # noqa: E402

run(os.path.join(HERE, "altws.ini"))
