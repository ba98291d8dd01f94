"""The benchmark lab: AltWebSocket measured beside its peers on this machine.

``python -m benchmarks [--quick] [--no-browser] [--no-cgi] [--no-extras] ...`` at the root of
the repository (``altws bench --local`` from a source checkout runs the same): the paper's
echo procedure (Table 3) on every transport, and beyond. It is not installed with the
package; ``altws bench URL`` (:mod:`altwebsocket.bench`) is the part a user gets.

- :mod:`.local` — the run: the bare ``websockets`` server, the daemon, the emulation on
  ``altws serve`` and under Apache CGI (beside a bare ``python3`` CGI), and headless
  Chromium, in one run; throughput, fan-out, held connections, memory;
- :mod:`.loadgen` — many emulated or native clients from one asyncio process;
- :mod:`.browser` (with ``browser.js``) — the procedure inside a Chromium page, over bare CDP;
- :mod:`.servers` — the bare echo servers and the process runner.

``docs/performance.md`` holds the figures of record and how to read them.
"""
