"""The outside observer's latency: a row (symbol, seq) seen at T makes every earlier seq
of that symbol visible by T; ticks outside the window or never seen do not count."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest_latency import ticklake_latencies  # noqa: E402

MS = 1_000_000


def test_a_later_seq_makes_the_earlier_ticks_of_its_symbol_visible() -> None:
    sent = [("A", 1, 0), ("A", 2, 1 * MS), ("B", 1, 2 * MS)]
    seen = [(5 * MS, "A", 2), (9 * MS, "B", 1)]
    assert ticklake_latencies(sent, seen, 0, 10 * MS) == [5.0, 4.0, 7.0]


def test_the_first_arrival_counts() -> None:
    sent = [("A", 1, 0)]
    seen = [(8 * MS, "A", 1), (3 * MS, "A", 1)]
    assert ticklake_latencies(sent, seen, 0, 10 * MS) == [3.0]


def test_ticks_outside_the_window_or_never_visible_are_left_out() -> None:
    sent = [("A", 1, 0), ("A", 2, 5 * MS), ("A", 3, 6 * MS), ("B", 1, 6 * MS)]
    seen = [(7 * MS, "A", 2)]
    # A1 before the window; A3 and B1 never shown visible
    assert ticklake_latencies(sent, seen, 1 * MS, 10 * MS) == [2.0]


def test_the_observer_command_carries_a_password_that_begins_with_a_dash() -> None:
    import json

    from bench_ingest_latency import observer_argv

    class Server:
        url, password = "redis://127.0.0.1:1/0", "-Xy_z"

    argv = observer_argv(Server(), 5.0, Path("/tmp/seen.json"), "IDLE")  # type: ignore[arg-type]
    flag, _, spec = argv[2].partition("=")
    assert flag == "--observe" and len(argv) == 3  # one argument: nothing for argparse to misread
    assert json.loads(spec) == ["redis://127.0.0.1:1/0", "-Xy_z", 5.0, "/tmp/seen.json", "IDLE"]
