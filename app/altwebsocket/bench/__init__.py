"""``altws bench``: the paper's echo benchmark (Table 3) on every transport, and beyond.

- :mod:`.procedure` — the procedure against a URL with the Python client, the statistics,
  the table, the progress bar, ``--json`` and ``--plot``;
- :mod:`.local` — ``altws bench --local``: the bare ``websockets`` server, the daemon, the
  emulation on ``altws serve`` and under Apache CGI (beside a bare ``python3`` CGI), and
  headless Chromium, in one run; throughput, fan-out, held connections, memory;
- :mod:`.loadgen` — many emulated or native clients from one asyncio process;
- :mod:`.browser` — the procedure inside a Chromium page (Playwright);
- :mod:`.servers` — the bare echo server and process helpers;
- :mod:`.cli` — the command line (:func:`add_parser`).

``docs/performance.md`` holds the figures of record and how to read them.
"""

from __future__ import annotations

from .cli import add_parser
from .procedure import PAPER, Series, bench_url

__all__ = ["add_parser", "bench_url", "Series", "PAPER"]
