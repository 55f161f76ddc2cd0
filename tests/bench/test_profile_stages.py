"""py-spy stacks grouped into pipeline stages: the most specific stage wins, waiting in
epoll is no stage's CPU, and shares become µs per tick."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from profile_stages import WAITING, by_stage, parse_raw, per_tick_us, stage_of  # noqa: E402

LOOP = (
    "MainThread;run (asyncio/runners.py:190);BaseEventLoop._run_once (asyncio/base_events.py:1922)"
)
PROCESS = LOOP + ";IngestConsumer._process (ingest/consumer.py:360)"
RAW = [
    # decode inside normalise inside the consume loop: decode
    PROCESS + ";normalise (ingest/normalise.py:187);decode_tick (core/tick.py:155) 30",
    PROCESS + ";normalise (ingest/normalise.py:190) 20",
    LOOP + ";EpollSelector.select (selectors.py:468) 500",
    "lake-writer_0;_worker (concurrent/futures/thread.py:83);"
    "LakeWriter.write (ingest/sinks/lake.py:276);write_table (pyarrow/parquet/core.py:2078) 40",
    LOOP + ";Fetcher._proc_fetch_request (aiokafka/consumer/fetcher.py:747) 10",
    # a commit goes through aiokafka, but it is the flush's commit
    LOOP + ";PartitionFlushes.commit (ingest/flushes.py:222);AIOKafkaConsumer.commit "
    "(aiokafka/consumer/consumer.py:600) 5",
    LOOP + ";something_else (foo.py:1) 15",
]


def test_the_innermost_known_stage_takes_the_sample() -> None:
    stacks = parse_raw(RAW)
    samples = by_stage(stacks)
    assert samples["decode + validate (msgspec)"] == 30
    assert samples["normalise: sequence, dedup, columns"] == 20
    assert samples["Parquet encode + file write"] == 40
    assert samples["Kafka fetch and record parsing (aiokafka)"] == 10
    assert samples["lake buffers, flush bookkeeping, offset commit"] == 5
    assert samples["event loop and other"] == 15
    assert samples[WAITING] == 500
    assert sum(samples.values()) == 620


def test_waiting_is_left_out_and_the_shares_add_up_to_the_cpu_per_tick() -> None:
    samples = by_stage(parse_raw(RAW))
    per_tick = per_tick_us(samples, cpu_seconds=1.2, ticks=100_000)
    assert WAITING not in per_tick
    assert sum(per_tick.values()) == pytest.approx(12.0)  # 1.2 s over 100k ticks
    assert per_tick["Parquet encode + file write"] == pytest.approx(12.0 * 40 / 120)


def test_a_line_that_is_not_py_spy_raw_output_is_refused() -> None:
    with pytest.raises(ValueError, match="not a py-spy raw line"):
        parse_raw(["no count here"])
    assert stage_of(("Thread",)) == "event loop and other"
