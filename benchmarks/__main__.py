"""``python -m benchmarks [--quick] [--no-browser] [--no-cgi] [--no-databases] [--no-extras]
[--rounds N,N] [--size BYTES] [--json FILE] [--plot FILE.png] [-q]``: the same as ``altws
bench --local`` (the options and the checks of :mod:`altwebsocket.bench.cli`, then
:func:`.local.command`)."""

from __future__ import annotations

import sys

from altwebsocket.bench.cli import main as bench_main

from .local import command


def main(argv: list[str] | None = None) -> int:
    """Run the lab with ``argv`` (default: the command line); the exit status."""
    return bench_main(["--local", *(sys.argv[1:] if argv is None else argv)], local=command)


if __name__ == "__main__":
    sys.exit(main())
