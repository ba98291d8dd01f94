"""``python -m altwebsocket`` is the ``altws`` command."""

import sys

from .cli import main

sys.exit(main())
