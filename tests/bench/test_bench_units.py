"""The pure pieces of ``altws bench``: statistics, round counts, the table, the progress bar,
the JSON document, the plot (or its clear message when matplotlib is missing)."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys

import pytest

from altwebsocket.bench import cli
from altwebsocket.bench.procedure import (
    Progress,
    Series,
    echo_rounds,
    format_series_table,
    parse_rounds,
    percentile,
    summary,
    write_json,
    write_plot,
)

from ..support import ROOT


@pytest.mark.parametrize("values, q, expected", [
    ([1.0], 50, 1.0),
    ([1.0, 2.0, 3.0], 50, 2.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
    ([float(n) for n in range(1, 101)], 90, 90.1),
    ([float(n) for n in range(1, 101)], 99, 99.01),
    ([5.0, 1.0, 3.0], 0, 1.0),
    ([5.0, 1.0, 3.0], 100, 5.0),
])
def test_percentile(values, q, expected) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_and_summary_of_nothing() -> None:
    assert math.isnan(percentile([], 50))
    assert summary([]) == {"count": 0}
    assert summary([2.0, 4.0])["mean"] == 3.0


@pytest.mark.parametrize("text, expected", [
    ("100", [100]), ("100,1000,10000", [100, 1000, 10000]), ("1_000, 5", [1000, 5]),
])
def test_parse_rounds(text, expected) -> None:
    assert parse_rounds(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-1", "10,x", "1.5"])
def test_parse_rounds_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_rounds(text)


def _series() -> Series:
    one = Series("daemon", "altws daemon (native)")
    one.add(3, 1.5, [0.4, 0.5, 0.6])
    one.add(5, 2.5, [0.5] * 5)
    return one


def test_series_json_and_table() -> None:
    one = _series()
    data = one.to_json()
    assert data["key"] == "daemon" and data["client"] == "python"
    assert set(data["runs"]) == {"3", "5"}
    assert data["runs"]["3"]["total_ms"] == 1.5
    assert data["runs"]["3"]["samples_ms"] == [0.4, 0.5, 0.6]
    assert data["summary"]["count"] == 8 and data["summary"]["median"] == 0.5
    skipped = Series("native", "native", skipped="no daemon")
    broken = Series("emulation", "emulation", error="cannot connect: refused")
    table = format_series_table([one, skipped, broken], [3, 5]).splitlines()
    assert table[0].split()[:3] == ["setup", "3", "5"]
    assert table[0].split()[-3:] == ["median", "p90", "p99"]
    assert table[2].startswith("altws daemon (native)") and "1.50" in table[2]
    assert "skipped: no daemon" in table[3]
    assert any("error: cannot connect: refused" in line for line in table)


def test_echo_rounds_checks_the_echo() -> None:
    box = {}
    total, samples = echo_rounds(lambda data: box.update(d=data), lambda t: box["d"], 4, 3)
    assert len(samples) == 4 and total >= sum(samples) * 0.5
    with pytest.raises(ValueError):
        echo_rounds(lambda data: None, lambda t: b"x", 1, 3)


def test_progress_on_a_pipe_writes_one_final_line() -> None:
    out = io.StringIO()
    bar = Progress("emulation x10", 10, stream=out)
    for _ in range(10):
        bar.update()
    bar.finish("12 ms")
    assert out.getvalue().count("\n") == 1
    assert "emulation x10" in out.getvalue() and "10/10 12 ms" in out.getvalue()
    assert "[" + "#" * 30 + "]" in out.getvalue()


def test_write_json(tmp_path) -> None:
    path = tmp_path / "figures.json"
    write_json(str(path), {"echo": [_series()]})
    data = json.loads(path.read_text())
    assert data["echo"][0]["runs"]["5"]["samples_ms"] == [0.5] * 5


def test_plot_is_a_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "plot.png"
    write_plot(str(path), [_series()], "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="altws")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def test_plot_without_matplotlib_is_a_clear_usage_error(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert cli.run(_args("http://127.0.0.1:9/echo", "--plot", "x.png")) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install" in err


@pytest.mark.parametrize("argv, message", [
    ((), "give an echo app's URL, or --local"),
    (("http://127.0.0.1:9/echo", "--local"), "give an echo app's URL, or --local"),
    (("http://127.0.0.1:9/echo", "--rounds", "0"), "not a positive round count"),
    (("http://127.0.0.1:9/echo", "--size", "0"), "--size must be positive"),
    (("ftp://127.0.0.1:9/echo",), "not an http(s):// or ws(s):// URL"),
    (("ws://127.0.0.1:9/echo", "--transport", "emulation"), "has no emulation"),
])
def test_usage_errors(argv, message, capsys) -> None:
    assert cli.run(_args(*argv)) == 2
    assert message in capsys.readouterr().err


def test_local_outside_a_source_checkout_says_where_the_lab_is(monkeypatch, capsys) -> None:
    """A non-editable install has no ``benchmarks/``: --local says to clone the repository."""
    monkeypatch.setattr(cli, "_lab_folder", lambda: None)
    assert cli.run(_args("--local", "--quick")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "clone" in err and "python -m benchmarks" in err


def test_the_lab_is_found_beside_app_in_a_checkout() -> None:
    assert cli._lab_folder() == os.path.join(ROOT, "benchmarks")


def test_python_m_benchmarks_takes_the_options_of_bench_local() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--size", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "altws bench: --size must be positive" in done.stderr


def test_hotpath_measures_warm_and_cold_posts_in_turns() -> None:
    """``python -m benchmarks.hotpath --cold BYTES``: an S/send with warm caches and with
    BYTES read before each, twice in turns; ``--stages``: a row per stage of the POST, each
    part of the whole call; bad numbers are a usage error."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.hotpath", "--posts", "20",
                           "--cold", "100000"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if "bytes read before each POST" in line]
    assert len(rows) == 2, done.stdout
    for row in rows:
        warm, cold = (float(part.split("µs")[0].split()[-1]) for part in row.split(";"))
        assert warm > 0 and cold > 0, row
    staged = subprocess.run([sys.executable, "-m", "benchmarks.hotpath", "--posts", "20",
                             "--cold", "100000", "--stages"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert staged.returncode == 0, staged.stdout + staged.stderr
    from benchmarks.hotpath import STAGES, TOTAL

    table = {line[:52].strip(): line[52:].split() for line in staged.stdout.splitlines()
             if line.startswith("  ") and len(line) > 52}
    for label in [label for label, _, _ in STAGES] + [TOTAL]:
        warm, cold = (float(number) for number in table[label])
        assert warm > 0 and cold > 0, (label, table[label])
    whole = [float(number) for number in table[TOTAL]]
    parts = [sum(float(table[label][i]) for label, _, _ in STAGES) for i in (0, 1)]
    assert parts[0] < whole[0] and parts[1] < whole[1], (parts, whole)  # the stages are inside
    refused = subprocess.run([sys.executable, "-m", "benchmarks.hotpath", "--cold", "-1"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--cold must be at least 0" in refused.stderr
