"""The ``altws bench`` command.

::

    altws bench URL [--transport emulation|native|both] [--rounds 100,1000,10000] [--size 4]
    altws bench --local [--quick] [--no-browser] [--no-cgi] [--no-databases] [--no-extras]
    ... [--json FILE] [--plot FILE.png]

Exit status: 0 when everything was measured, 1 when a part failed (the table shows which),
2 for a usage error (including ``--plot`` without matplotlib, checked before measuring).

``--local`` is the benchmark lab, ``benchmarks/`` at the top of the source repository (not
installed with the package): from a source checkout (an editable install) this command runs
it, as ``python -m benchmarks`` does; elsewhere it says to clone the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Optional

from .procedure import (
    PAPER,
    PlotUnavailable,
    Series,
    bench_url,
    format_ms,
    format_series_table,
    parse_rounds,
    write_json,
    write_plot,
)

__all__ = ["add_parser", "run", "finish"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``altws bench``."""
    parser = sub.add_parser(
        "bench", help="measure echo round trips like the paper's Table 3 (and more)",
        description="Run the paper's echo procedure (send a few random bytes, wait for the "
                    "echo, repeat) against an AltWebSocket echo app at URL, or, with --local, "
                    "set up every transport on this machine (bare websockets, the daemon, "
                    "the emulation on altws serve and under Apache CGI, headless Chromium) "
                    "and measure them side by side, with throughput, fan-out, held "
                    "connections and memory.")
    parser.add_argument("url", nargs="?", metavar="URL",
                        help="an echo app's base URL (http://host/cgi-bin/altws.cgi/echo, "
                             "http://127.0.0.1:8000/echo) or a ws:// URL")
    parser.add_argument("--local", action="store_true",
                        help="set everything up on this machine and measure it all (the "
                             "benchmark lab, benchmarks/ of a source checkout)")
    parser.add_argument("--transport", choices=("emulation", "native", "both"),
                        default="both",
                        help="with URL: which transport (native: the daemon B/info "
                             "advertises; default both)")
    parser.add_argument("--rounds", default=None, metavar="N,N,...",
                        help="round counts (default 100,1000,10000; with --local the CGI "
                             "setups use the counts up to 1000)")
    parser.add_argument("--size", type=int, default=4, metavar="BYTES",
                        help="random bytes per message (default 4)")
    parser.add_argument("--quick", action="store_true",
                        help="--local with tiny sizes (a smoke test, not a measurement)")
    parser.add_argument("--no-browser", action="store_true", help="--local without Chromium")
    parser.add_argument("--no-cgi", action="store_true", help="--local without Apache CGI")
    parser.add_argument("--no-databases", action="store_true",
                        help="--local without the echo on PostgreSQL and MariaDB")
    parser.add_argument("--no-extras", action="store_true",
                        help="--local: round trips only (no throughput, fan-out, held "
                             "connections)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for one echo (default 10)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the raw figures")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="draw the distributions per transport (needs matplotlib)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"altws bench: {message}", file=sys.stderr)
    return 2


LocalRun = Callable[[argparse.Namespace, Optional[list[int]]], int]


def run(args: argparse.Namespace, local: LocalRun | None = None) -> int:
    """Run ``altws bench`` with parsed arguments; return the exit status. ``local`` runs
    ``--local`` (the lab passes its own; by default it is found in the source tree)."""
    if bool(args.url) == bool(args.local):
        return _fail("give an echo app's URL, or --local")
    if args.size <= 0:
        return _fail("--size must be positive")
    try:
        rounds = parse_rounds(args.rounds) if args.rounds else None
    except ValueError as exc:
        return _fail(str(exc))
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _fail(str(PlotUnavailable(
                "--plot needs matplotlib: pip install 'altwebsocket[plot]' "
                "(or pip install matplotlib)")))
    if args.local:
        return local(args, rounds) if local is not None else _run_local(args, rounds)
    return _run_url(args, rounds or [100, 1000, 10000])


def finish(args: argparse.Namespace, series: list[Series], document: dict[str, Any],
           title: str) -> int:
    """Write ``--json`` and ``--plot`` if asked; 1 if either failed, else 0."""
    status = 0
    if args.json:
        try:
            write_json(args.json, document)
            print(f"raw figures: {args.json}")
        except OSError as exc:
            print(f"altws bench: cannot write {args.json}: {exc}", file=sys.stderr)
            status = 1
    if args.plot:
        try:
            write_plot(args.plot, series, title)
            print(f"plot: {args.plot}")
        except (PlotUnavailable, ValueError, OSError) as exc:
            print(f"altws bench: no plot: {exc}", file=sys.stderr)
            status = 1
    return status


def _run_url(args: argparse.Namespace, rounds: list[int]) -> int:
    url: str = args.url
    if url.startswith(("ws://", "wss://")):
        if args.transport == "emulation":
            return _fail("a ws:// URL has no emulation: give the app's http(s):// URL")
        transports = ["native"]
    elif url.startswith(("http://", "https://")):
        transports = ["emulation", "native"] if args.transport == "both" else [args.transport]
    else:
        return _fail(f"not an http(s):// or ws(s):// URL: {url}")
    series: list[Series] = []
    for transport in transports:
        if transport == "native" and url.startswith("http") and args.transport == "both":
            from ..client.emulation import fetch_info

            try:
                advertised = fetch_info(url.rstrip("/"), args.timeout).get("websocket")
            except Exception as exc:  # unreachable: the emulation run reports it too
                advertised = None
                reason = f"GET {url.rstrip('/')}/info failed: {exc}"
            else:
                reason = "B/info advertises no native WebSocket (no daemon)"
            if not advertised:
                series.append(Series("native", "native", "python", "native", skipped=reason))
                continue
        series.append(bench_url(url, transport, rounds, args.size, label=transport,
                                key=transport, timeout=args.timeout, quiet=args.quiet))
    print(f"altws bench {url}   ({args.size} random bytes, wait for the echo, repeat)")
    print(format_series_table(series, rounds))
    _print_paper(series)
    if max(rounds) > 200:
        print("note: a server's max_rate (default 5,000 messages/s per connection, burst "
              "10,000; under CGI 100, burst 200) slows longer runs down to that rate; set "
              "max_rate = 0 on a server you benchmark")
    measured = [one for one in series if one.totals]
    if len(measured) == 2:
        native, emulated = (next(one for one in measured if one.key == key)
                            for key in ("native", "emulation"))
        print(f"emulation / native (medians): {emulated.median() / native.median():.2f}×"
              f"   (paper: {PAPER['emulation'][10000] / PAPER['websocket'][10000]:.1f}×)")
    document = {"version": 1, "kind": "url", "url": url, "size": args.size,
                "rounds": rounds, "echo": [one.to_json() for one in series],
                "paper": {name: {str(k): v for k, v in figures.items()}
                          for name, figures in PAPER.items()}}
    status = finish(args, series, document, f"altws bench {url}")
    failed = [one for one in series if one.error]
    return 1 if failed or status else 0


def _print_paper(series: list[Series]) -> None:
    for one in series:
        paper = PAPER["websocket" if one.transport == "native" else "emulation"]
        cells = [f"{count:,}: {format_ms(paper[count])}" for count in sorted(one.totals)
                 if count in paper]
        if cells:
            print(f"paper, {'WebSocket' if one.transport == 'native' else 'SSE + Ajax'} "
                  f"(total ms): " + "; ".join(cells))


def _run_local(args: argparse.Namespace, rounds: list[int] | None) -> int:
    """``--local``: run the benchmark lab of the source checkout this package is in."""
    lab = _lab_folder()
    if lab is None:
        return _fail("--local runs the benchmark lab, which is not installed with the package: "
                     "clone the AltWebSocket repository and run `python -m benchmarks` at its "
                     "root")
    root = os.path.dirname(lab)
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.local import command

    return int(command(args, rounds))


def _lab_folder() -> str | None:
    """``benchmarks/`` at the root of the source tree (the parent of ``app/``), if this
    package runs from one (an editable install); else ``None``."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    app = os.path.dirname(package)
    lab = os.path.join(os.path.dirname(app), "benchmarks")
    if os.path.basename(app) == "app" and os.path.isfile(os.path.join(lab, "local.py")):
        return lab
    return None


def main(argv: list[str] | None = None, local: LocalRun | None = None) -> int:
    """``python -m altwebsocket.bench.cli`` (the same as ``altws bench``)."""
    parser = argparse.ArgumentParser(prog="altws")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench"] + list(sys.argv[1:] if argv is None else argv))
    return run(args, local)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
