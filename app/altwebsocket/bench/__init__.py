"""``altws bench URL``: the paper's echo benchmark (Table 3) against an echo app.

- :mod:`.procedure` — the procedure against a URL with the Python client, the statistics,
  the table, the progress bar, ``--json`` and ``--plot``;
- :mod:`.cli` — the command line (:func:`add_parser`).

``altws bench --local`` (every transport on this machine, side by side with its peers) is the
benchmark lab, ``benchmarks/`` at the top of the source repository: not installed with the
package. ``docs/performance.md`` holds the figures of record and how to read them.
"""

from __future__ import annotations

from .cli import add_parser
from .procedure import PAPER, Series, bench_url

__all__ = ["add_parser", "bench_url", "Series", "PAPER"]
