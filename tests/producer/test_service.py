"""The producer service on a real broker: paced rate, replay round trip, replay pace, no broker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from producer_kit import consume_all, producer_settings, unique_topic

from ticklake.core.tick import Tick, decode_tick
from ticklake.devstack.ports import free_port
from ticklake.producer.replay import read_ticks
from ticklake.producer.service import (
    BrokerUnavailableError,
    ProducerService,
    ReplayFeed,
    SimulateFeed,
)
from ticklake.producer.simulator import MarketSimulator, build_market

T0 = 1_764_000_000_000_000_000


async def test_paced_feed_holds_the_requested_rate_over_ten_seconds(kafka_bootstrap: str) -> None:
    """Pacing correctness (not speed): 5,000 ticks/s is ~5% of one core.

    Counted from the records' Kafka timestamps (set when the tick was handed to
    the client), over the 10 s window that starts 1 s into the run, so start-up
    and the final flush are outside it. A loaded machine may delay a slice, but
    the pacer catches up within the window; ±2% is 1,000 ticks.
    """
    topic = unique_topic()
    settings = producer_settings(kafka_bootstrap, topic, feed_rate=5000, feed_duration_s=12.0)
    result = await ProducerService(settings, show_progress=False).run(SimulateFeed())
    assert result.failed == 0
    assert result.acked == 60_000
    stamps = np.sort(np.array([r.timestamp for r in await consume_all(kafka_bootstrap, topic)]))
    window_start = stamps[0] + 1000
    in_window = np.count_nonzero((stamps >= window_start) & (stamps < window_start + 10_000))
    assert in_window == pytest.approx(50_000, rel=0.02)


async def test_bursts_raise_the_rate_for_their_duration(kafka_bootstrap: str) -> None:
    topic = unique_topic()
    settings = producer_settings(
        kafka_bootstrap,
        topic,
        feed_rate=1000,
        feed_duration_s=4.0,
        feed_burst_every_s=2.0,
        feed_burst_duration_s=1.0,
        feed_burst_multiplier=4.0,
    )
    result = await ProducerService(settings, show_progress=False).run(SimulateFeed())
    # 4 s at 1,000/s plus one burst (2-3 s) at +3,000/s; the burst starting at 4 s is not reached.
    assert (result.acked, result.failed) == (7000, 0)


async def test_simulate_to_parquet_then_replay_publishes_identical_ticks(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    recorded = tmp_path / "feed.parquet"
    common = dict(feed_rate=20_000, feed_count=12_345, feed_seed=42)
    record = producer_settings(kafka_bootstrap, "unused", **common)
    result = await ProducerService(record, show_progress=False).run(
        SimulateFeed(start_ns=T0, record_to=recorded)
    )
    assert result.generated == 12_345
    assert pq.read_metadata(recorded).num_rows == 12_345

    topic = unique_topic()
    replay = producer_settings(kafka_bootstrap, topic)
    result = await ProducerService(replay, show_progress=False).run(
        ReplayFeed(recorded, speed=0, on_bad_row="fail")
    )
    assert (result.acked, result.failed, result.bad_rows) == (12_345, 0, 0)

    published = [decode_tick(r.value) for r in await consume_all(kafka_bootstrap, topic)]
    from_file = [t for chunk in read_ticks(recorded) for t in chunk.ticks]
    by_key = lambda ticks: sorted(ticks, key=lambda t: (t.symbol, t.seq))  # noqa: E731
    assert by_key(published) == by_key(from_file)
    # ... and the file is exactly what the seeded simulator produces (reproducible runs).
    assert from_file[:50] == _first_ticks(seed=42, rate=20_000, count=50)


def _first_ticks(seed: int, rate: int, count: int) -> list[Tick]:
    sim = MarketSimulator(build_market(), seed=seed)
    per_slice = rate // 100  # 10 ms slices
    ticks: list[Tick] = []
    i = 0
    while len(ticks) < count:
        ticks += sim.generate(per_slice, T0 + i * 10_000_000, T0 + (i + 1) * 10_000_000).to_ticks()
        i += 1
    return ticks[:count]


async def test_replay_keeps_the_original_pace_scaled_by_speed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    path = tmp_path / "two_seconds.csv"
    lines = ["symbol,ts_ns,price,size,exchange,seq"]
    for i in range(201):  # one tick every 10 ms for 2 s of market time
        lines.append(f"AAPL,{T0 + i * 10_000_000},190.0,1,XNAS,{i + 1}")
    path.write_text("\n".join(lines) + "\n")
    topic = unique_topic()
    result = await ProducerService(
        producer_settings(kafka_bootstrap, topic), show_progress=False
    ).run(ReplayFeed(path, speed=4.0))
    assert result.acked == 201
    stamps = sorted(r.timestamp for r in await consume_all(kafka_bootstrap, topic))
    # 2 s of market time at 4x is 0.5 s of wall time.
    assert stamps[-1] - stamps[0] == pytest.approx(500, abs=250)


async def test_bad_replay_rows_are_counted_and_logged_with_file_and_line(
    kafka_bootstrap: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text(
        "symbol,ts_ns,price,size,exchange,seq\n"
        f"AAPL,{T0},190.0,1,XNAS,1\n"
        f"AAPL,{T0 + 1},-5,1,XNAS,2\n"
        f"AAPL,{T0 + 2},190.0,1,XNAS,3\n"
    )
    topic = unique_topic()
    caplog.set_level(logging.WARNING, logger="ticklake.producer")
    service = ProducerService(producer_settings(kafka_bootstrap, topic), show_progress=False)
    result = await service.run(ReplayFeed(path, speed=0))
    assert (result.acked, result.bad_rows) == (2, 1)
    assert f"{path}:3: non_positive_price" in caplog.text
    assert b"ticklake_producer_replay_bad_rows_total 1.0" in service.metrics.exposition()


async def test_unreachable_broker_is_a_clear_error_after_retrying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    settings = producer_settings(bootstrap, unique_topic(), connect_retry_max_s=2.0)
    caplog.set_level(logging.WARNING, logger="ticklake.producer")
    with pytest.raises(BrokerUnavailableError, match=f"Kafka at {bootstrap}: no answer within 2s"):
        await ProducerService(settings, show_progress=False).run(SimulateFeed())
    assert caplog.text.count(": failed (attempt") >= 2


async def test_stop_while_still_waiting_for_the_broker_exits_promptly() -> None:
    settings = producer_settings(
        f"127.0.0.1:{free_port()}", unique_topic(), connect_retry_max_s=120, shutdown_timeout_s=4
    )
    service = ProducerService(settings, show_progress=False)
    run = asyncio.create_task(service.run(SimulateFeed()))
    await asyncio.sleep(1.0)
    service.request_stop()
    result = await asyncio.wait_for(run, 10)
    assert result.stopped_by_signal
    assert (result.generated, result.acked, result.failed) == (0, 0, 0)
