"""The paper's procedure (Table 3) against a URL, and the figures it produces.

Procedure: open one connection, send a few random bytes, wait for the echo, send the next;
the total wall time of N round trips is the figure of the paper, and every round trip is
also timed on its own (median / p90 / p99). Each round count is a separate run on a fresh
connection, after a short warm-up that is not counted.

This module has no dependency beyond the package: :class:`Progress` is a plain text bar on
stderr, :func:`write_plot` imports matplotlib only when asked (the ``plot`` extra).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Callable

__all__ = [
    "PAPER",
    "Series",
    "Progress",
    "percentile",
    "summary",
    "echo_rounds",
    "bench_url",
    "format_series_table",
    "format_ms",
    "write_json",
    "write_plot",
    "PlotUnavailable",
    "parse_rounds",
]

# The paper's Table 3: total ms for N round trips (WebSocket, and SSE + Ajax in PHP).
PAPER: dict[str, dict[int, float]] = {
    "websocket": {100: 110.0, 1000: 654.0, 10000: 6145.0},
    "emulation": {100: 2655.0, 1000: 16524.0, 10000: 152115.0},
}

WARMUP = 5
"""Round trips made on every connection before the timed ones."""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``values``, linearly interpolated; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(math.floor(position))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """``count``, ``mean``, ``median``, ``p90``, ``p99``, ``min``, ``max`` of ``values``."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean": sum(values) / len(values),
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
    }


@dataclass
class Series:
    """The echo figures of one setup: per round count, the total and each round trip (ms).

    ``key`` is a short stable name (``daemon``, ``emulation-cgi``…), ``label`` what a reader
    sees, ``client`` who drove it (``python`` or ``chromium``), ``transport`` ``native``,
    ``emulation`` or ``http`` (a bare request, no echo).
    """

    key: str
    label: str
    client: str = "python"
    transport: str = "native"
    totals: dict[int, float] = field(default_factory=dict)
    samples: dict[int, list[float]] = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None

    def all_samples(self) -> list[float]:
        """Every round trip of every round count."""
        return [value for rounds in sorted(self.samples) for value in self.samples[rounds]]

    def stats(self) -> dict[str, float]:
        """:func:`summary` of :meth:`all_samples`."""
        return summary(self.all_samples())

    def median(self) -> float:
        """Median ms per round trip over all round counts (NaN without samples)."""
        return percentile(self.all_samples(), 50)

    def add(self, rounds: int, total_ms: float, samples: list[float]) -> None:
        """Record one run of ``rounds`` round trips."""
        self.totals[rounds] = total_ms
        self.samples[rounds] = samples

    def to_json(self, with_samples: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (samples rounded to the microsecond)."""
        data: dict[str, Any] = {
            "key": self.key, "label": self.label, "client": self.client,
            "transport": self.transport, "error": self.error, "skipped": self.skipped,
            "runs": {},
            "summary": _rounded(self.stats()),
        }
        for rounds in sorted(self.totals):
            run: dict[str, Any] = {"total_ms": round(self.totals[rounds], 3),
                                   "summary": _rounded(summary(self.samples[rounds]))}
            if with_samples:
                run["samples_ms"] = [round(value, 3) for value in self.samples[rounds]]
            data["runs"][str(rounds)] = run
        return data


def _rounded(stats: dict[str, float]) -> dict[str, float]:
    return {name: (value if name == "count" else round(value, 4))
            for name, value in stats.items()}


class Progress:
    """A plain progress bar on stderr: ``label [#####.....] 512/1000``, redrawn in place.

    Redrawn at most ten times a second; on a stream that is not a terminal only the final
    line is written.
    """

    def __init__(self, label: str, total: int, stream: IO[str] | None = None,
                 width: int = 30) -> None:
        self.label = label
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self._drawn = 0.0
        try:
            self._tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False

    def update(self, count: int = 1) -> None:
        """Advance by ``count`` steps."""
        self.done = min(self.total, self.done + count)
        now = time.monotonic()
        if self._tty and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw("\r")

    def _draw(self, prefix: str, end: str = "") -> None:
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"{prefix}{self.label[:44]:<44} [{bar}] {self.done}/{self.total}{end}")
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        """Draw the final state and end the line (``note`` after it)."""
        self.done = self.total if not note else self.done
        self._draw("\r" if self._tty else "", f" {note}\n" if note else "\n")


def echo_rounds(send: Callable[[bytes], None], recv: Callable[[float], Any], rounds: int,
                size: int, progress: Progress | None = None, timeout: float = 10.0
                ) -> tuple[float, list[float]]:
    """Run ``rounds`` echo round trips of ``size`` random bytes; return (total ms, samples).

    ``recv(timeout)`` must return the next message; an echo that differs from what was sent
    raises ``ValueError``.
    """
    samples: list[float] = []
    clock = time.perf_counter
    started = clock()
    for _ in range(rounds):
        payload = os.urandom(size)
        before = clock()
        send(payload)
        answer = recv(timeout)
        samples.append((clock() - before) * 1000.0)
        if answer != payload:
            raise ValueError(f"the echo differs from what was sent: {answer!r} != {payload!r}")
        if progress is not None:
            progress.update()
    return (clock() - started) * 1000.0, samples


def bench_url(url: str, transport: str, rounds: Iterable[int], size: int,
              label: str | None = None, key: str | None = None,
              timeout: float = 10.0, quiet: bool = False) -> Series:
    """The paper's procedure against an AltWebSocket echo app with the Python client.

    ``transport`` is ``emulation`` (SSE + POST) or ``native`` (the daemon ``B/info``
    advertises, or ``url`` itself when it is ``ws://``). Errors are recorded in the series,
    not raised.
    """
    from ..client import connect

    series = Series(key or transport, label or f"{transport} {url}", "python", transport)
    emulate = transport == "emulation"
    for count in rounds:
        progress = None if quiet else Progress(f"{series.label[:36]} x{count}", count)
        try:
            client = connect(url, emulate=emulate if not url.startswith("ws") else None,
                             timeout=timeout)
        except Exception as exc:  # ConnectFailed, ValueError: recorded for the table
            series.error = f"cannot connect: {exc}"
            if progress is not None:
                progress.finish("failed")
            return series
        try:
            echo_rounds(client.send, client.recv, WARMUP, size, None, timeout)
            total, samples = echo_rounds(client.send, client.recv, count, size, progress,
                                         timeout)
            series.add(count, total, samples)
            if progress is not None:
                progress.finish(f"{total:,.0f} ms")
        except Exception as exc:  # a timeout or a wrong echo: recorded for the table
            series.error = f"{type(exc).__name__}: {exc}"
            if progress is not None:
                progress.finish("failed")
            return series
        finally:
            try:
                client.close(1000, timeout=timeout)
            except Exception:  # closing is best effort here
                pass
    return series


def parse_rounds(text: str) -> list[int]:
    """``"100,1000,10000"`` → ``[100, 1000, 10000]`` (positive integers, ``_`` allowed)."""
    counts = []
    for part in text.split(","):
        part = part.strip().replace("_", "")
        if not part.isdigit() or int(part) <= 0:
            raise ValueError(f"not a positive round count: {part!r}")
        counts.append(int(part))
    return counts


def format_ms(value: float) -> str:
    """Milliseconds for a table: 3 significant digits below 10, then whole numbers."""
    if value != value:  # NaN
        return "-"
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def format_series_table(series: Sequence[Series], rounds: Sequence[int]) -> str:
    """The paper's table: total ms per round count, then median / p90 / p99 per round trip."""
    counts = sorted({count for one in series for count in one.totals} | set(rounds))
    name_width = max([len("setup")] + [len(one.label) for one in series])
    head = [f"{'setup':<{name_width}}"] + [f"{count:>10,}" for count in counts] + \
        [f"{'median':>8}", f"{'p90':>8}", f"{'p99':>8}"]
    lines = ["  ".join(head),
             " " * name_width + "  " + f"{'total ms for N round trips':^{12 * len(counts) - 2}}"
             + "  " + f"{'ms per round trip':^28}"]
    for one in series:
        if one.skipped and not one.totals:
            lines.append(f"{one.label:<{name_width}}  skipped: {one.skipped}")
            continue
        cells = [f"{one.label:<{name_width}}"]
        for count in counts:
            cells.append(f"{format_ms(one.totals[count]) if count in one.totals else '-':>10}")
        stats = one.stats()
        for name in ("median", "p90", "p99"):
            cells.append(f"{format_ms(stats.get(name, math.nan)):>8}")
        lines.append("  ".join(cells))
        if one.error:
            lines.append(f"{'':<{name_width}}  error: {one.error}")
    return "\n".join(lines)


def write_json(path: str, document: dict[str, Any]) -> None:
    """Write ``document`` as indented JSON (the parent folder must exist)."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1, allow_nan=False, default=_json_default)
        out.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Series):
        return value.to_json()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed (``pip install 'altwebsocket[plot]'``)."""


def write_plot(path: str, series: Sequence[Series], title: str = "") -> None:
    """Draw the round-trip distributions per setup (box plots, log scale) into ``path``.

    Raises:
        PlotUnavailable: matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'altwebsocket[plot]' "
            "(or pip install matplotlib)") from None
    shown = [one for one in series if one.all_samples()]
    if not shown:
        raise ValueError("nothing to plot: no series has samples")
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(shown) + 1.6))
    data = [one.all_samples() for one in reversed(shown)]
    labels = [f"{one.label} ({format_ms(one.median())} ms)" for one in reversed(shown)]
    colours = {"native": "#4c72b0", "emulation": "#dd8452", "http": "#8c8c8c"}
    import inspect

    sideways: dict[str, Any] = {"orientation": "horizontal"} if "orientation" in \
        inspect.signature(axes.boxplot).parameters else {"vert": False}
    boxes = axes.boxplot(data, **sideways, whis=(1, 99), showfliers=False,
                         patch_artist=True, widths=0.6,
                         medianprops={"color": "black", "linewidth": 1.5})
    for patch, one in zip(boxes["boxes"], reversed(shown)):
        patch.set_facecolor(colours.get(one.transport, "#55a868"))
        if one.client == "chromium":
            patch.set_hatch("//")
    axes.set_yticks(range(1, len(labels) + 1))
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("ms per echo round trip (box: p25–p75, line: median, whiskers: p1–p99; "
                    "hatched: headless Chromium)", fontsize=8)
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.set_title(title or "AltWebSocket echo round trips", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
