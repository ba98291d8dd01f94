"""Where the files shipped beside the package are: ``static/``, ``deploy/``, ``cgi-bin/``.

In a checkout they are at the top of the project; once installed with pip they are under
``<prefix>/share/altwebsocket/`` (``data_files`` in ``setup.cfg``).
"""

from __future__ import annotations

import os
import sys

__all__ = ["shipped"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def shipped(folder: str, marker: str) -> str:
    """The absolute path of the shipped ``folder`` that holds ``marker`` (a file inside it)."""
    candidates = [
        os.path.join(_HERE, "..", "..", folder),
        os.path.join(sys.prefix, "share", "altwebsocket", folder),
    ]
    for candidate in candidates:
        if os.path.exists(os.path.join(candidate, marker)):
            return os.path.abspath(candidate)
    return os.path.abspath(candidates[0])
