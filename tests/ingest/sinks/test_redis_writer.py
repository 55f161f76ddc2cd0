"""The Redis cache against a real Redis: guarded latest hash, idempotent tail, outages."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from ingest_kit import (
    RunningIngest,
    create_topic,
    lake_row_count,
    produce,
    records,
    settings_for,
    tick_messages,
    tick_stream,
    unique_prefix,
    unique_topic,
    wait_until,
)

from ticklake.core import hot_cache
from ticklake.core.tick import Tick, encode_tick
from ticklake.devstack.redis import RedisServer
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import PartitionProcessor
from ticklake.ingest.sinks import redis_writer
from ticklake.ingest.sinks.redis_writer import PendingWrites, RedisWriter, plan_calls


class Rec:
    def __init__(self, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset = "t", 0, offset
        self.key, self.value, self.headers = None, value, ()


def batch(symbol: str, seqs: list[int], offsets: list[int], price: float = 10.0, later_ns: int = 0):
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    recs = [
        Rec(
            o,
            encode_tick(
                Tick(
                    symbol=symbol,
                    ts_ns=1_735_828_200_000_000_000 + s + later_ns,
                    price=price + s,
                    size=1.0,
                    exchange="X",
                    seq=s,
                )
            ),
        )
        for s, o in zip(seqs, offsets, strict=True)
    ]
    return processor.process(recs, 1)


async def latest(client: aioredis.Redis, symbol: str) -> dict:
    return hot_cache.decode_latest_hash(await client.hgetall(hot_cache.latest_key(symbol)))


async def test_the_latest_hash_never_moves_back_and_a_replay_adds_no_tail_entries(
    ingest_redis: str, redis_password: str, redis_client: aioredis.Redis
) -> None:
    symbol = unique_prefix()
    cache = RedisWriter.from_url(ingest_redis, redis_password, 1.0, IngestMetrics())
    try:
        cache.add(batch(symbol, [1, 2, 3], [10, 11, 12]))
        await cache.flush()
        assert (await latest(redis_client, symbol))["seq"] == 3
        # a replay of older ticks (crash recovery) and an out-of-order straggler
        cache.add(batch(symbol, [1, 2], [10, 11]))
        await cache.flush()
        cache.add(batch(symbol, [2], [13]))
        await cache.flush()
        row = await latest(redis_client, symbol)
        assert (row["seq"], row["kafka_offset"], row["price"]) == (3, 12, 13.0)
        tail = await redis_client.xrange(hot_cache.tail_key(symbol))
        assert [int(f[b"kafka_offset"]) for _, f in tail] == [10, 11, 12, 13]
        cache.add(batch(symbol, [4], [14]))
        await cache.flush()
        assert (await latest(redis_client, symbol))["seq"] == 4
        # the source restarted and counts from 1 again, with later event times
        cache.add(batch(symbol, [1], [15], later_ns=10**9))
        await cache.flush()
        row = await latest(redis_client, symbol)
        assert (row["seq"], row["kafka_offset"]) == (1, 15)
    finally:
        await cache.stop()


async def test_each_flush_publishes_the_rows_that_changed(
    ingest_redis: str, redis_password: str, redis_client: aioredis.Redis
) -> None:
    symbol = unique_prefix()
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(hot_cache.TICKS_CHANNEL)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    cache = RedisWriter.from_url(ingest_redis, redis_password, 1.0, IngestMetrics())
    try:
        cache.add(batch(symbol, [1, 2], [0, 1]))
        await cache.flush()
        cache.add(batch(symbol, [1], [0]))  # replay: nothing changes, nothing published
        await cache.flush()
        cache.add(batch(symbol, [3], [2]))
        await cache.flush()
        messages = []
        while m := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0):
            rows = hot_cache.decode_channel_message(m["data"])
            messages.append([(r["symbol"], r["seq"]) for r in rows if r["symbol"] == symbol])
        assert [m for m in messages if m] == [[(symbol, 2)], [(symbol, 3)]]
    finally:
        await pubsub.aclose()
        await cache.stop()


async def test_redis_outage_keeps_the_lake_going_and_the_cache_catches_up(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 2)
    symbols = [f"{unique_prefix()}{i}" for i in range(3)]
    stream = tick_stream(symbols, 900, seed=4)
    # symbols[2] gets no ticks after the outage: only the catch-up can bring its newest
    ticks = stream[:600] + [t for t in stream[600:] if t.symbol != symbols[2]]
    lake = tmp_path / "lake"
    settings = settings_for(kafka_bootstrap, topic, lake, server.url, server.password)
    client = aioredis.Redis.from_url(server.url, password=server.password)
    try:
        async with RunningIngest(settings) as running:
            await produce(kafka_bootstrap, topic, tick_messages(ticks[:300]))
            await wait_until(lambda: lake_row_count(lake) >= 300, 60, "first ticks")
            await wait_until(lambda: running.service.cache.healthy, 30, "redis up")
            assert (await running.service.readiness())["ready"]

            server.stop()
            await produce(kafka_bootstrap, topic, tick_messages(ticks[300:600]))
            await wait_until(lambda: lake_row_count(lake) >= 600, 60, "lake goes on")
            await wait_until(lambda: not running.service.cache.healthy, 30, "redis seen down")
            report = await running.service.readiness()
            assert not report["ready"] and not report["checks"]["redis_reachable"]
            assert running.counter("ticklake_ingest_redis_errors_total") >= 1

            server.start()
            await produce(kafka_bootstrap, topic, tick_messages(ticks[600:]))
            await wait_until(lambda: lake_row_count(lake) >= len(ticks), 60, "all in the lake")
            await wait_until(
                lambda: running.service.cache.healthy and not running.service.cache.has_pending,
                30,
                "cache caught up",
            )
            assert (await running.service.readiness())["ready"]
        # Redis restarted empty (no persistence): the catch-up rewrote every latest hash
        for symbol in symbols:
            newest = max(t.seq for t in ticks if t.symbol == symbol)
            fields = await client.hgetall(hot_cache.latest_key(symbol))
            assert hot_cache.decode_latest_hash(fields)["seq"] == newest
    finally:
        await client.aclose()
        server.stop()


def test_pending_writes_keep_the_newest_row_and_a_failed_write_goes_back_under_newer_ones() -> None:
    symbol = "PW"
    pending = PendingWrites(tail_max=3, symbols_max=10)
    pending.add(batch(symbol, [1, 2, 3, 4], [0, 1, 2, 3]))
    pending.add(batch(symbol, [2], [1]))  # a replayed older tick does not win
    assert pending.latest[symbol].row["seq"] == 4
    assert [o for o, _ in pending.tail[symbol]] == [2, 3, 1]  # the last 3, as they came
    taken = pending.take()
    assert len(pending) == 0 and len(taken) == 1
    pending.add(batch(symbol, [5], [4]))  # arrives while the write of `taken` fails
    pending.put_back(taken)
    assert pending.latest[symbol].row["seq"] == 5
    assert [o for o, _ in pending.tail[symbol]] == [3, 1, 4]  # older entries first, bounded
    assert sum(len(t) for t in pending.event_ts) == 6


def test_only_rows_still_wanted_at_take_are_encoded_and_they_match_the_batch(monkeypatch) -> None:
    encoded_rows: list[int] = []
    real = hot_cache.encode_tail_ticks

    def counting(names, columns):
        encoded_rows.append(len(columns[0]))
        return real(names, columns)

    monkeypatch.setattr(hot_cache, "encode_tail_ticks", counting)
    pending = PendingWrites(tail_max=2, symbols_max=10)
    pending.add(batch("EN", [1, 2, 3, 4, 5], [10, 11, 12, 13, 14]))
    pending.add(batch("EN", [6, 7], [15, 16]))  # pushes 4 and 5 out before the write
    assert encoded_rows == []  # adding encodes nothing
    taken = pending.take()
    # one call for the second batch's two rows; the first batch has nothing left
    assert encoded_rows == [2]
    entries = list(taken.tail["EN"])
    assert [offset for offset, _ in entries] == [15, 16]
    rows = [hot_cache.decode_tail_entry({hot_cache.TAIL_FIELD_TICK: tick}) for _, tick in entries]
    assert [(r["seq"], r["kafka_offset"], r["price"]) for r in rows] == [
        (6, 15, 16.0),
        (7, 16, 17.0),
    ]
    assert taken.latest["EN"].tick == entries[-1][1]  # the newest row's JSON, shared
    assert taken.latest["EN"].row["seq"] == 7


def test_a_legacy_tick_without_seq_has_null_seq_in_the_tail_and_the_latest_row() -> None:
    pending = PendingWrites(tail_max=5, symbols_max=10)
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    legacy = (
        b'{"symbol": "LG", "price": 5.0, "size": 1, "exchange": "X",'
        b' "ts": "2025-01-02T14:30:00.123456+00:00"}'
    )
    pending.add(processor.process([Rec(0, legacy)], 1))
    taken = pending.take()
    ((_, tick),) = taken.tail["LG"]
    assert hot_cache.decode_tail_entry({hot_cache.TAIL_FIELD_TICK: tick})["seq"] is None
    assert taken.latest["LG"].row["seq"] is None


def test_small_steps_of_many_symbols_each_get_their_own_rows_json() -> None:
    """Steps of a few ticks over several symbols, several steps per write: every tail
    entry and every latest tick must carry its own row's JSON (the gather hands each
    symbol's part its slice of its batch's encoded rows)."""
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    recs = records(40, seed=5)
    pending = PendingWrites(tail_max=4, symbols_max=10)
    for i in range(0, 40, 3):  # 14 steps of 3 ticks (the last of 1)
        pending.add(processor.process(recs[i : i + 3], 1))
    taken = pending.take()
    assert set(taken.tail) == {"AA", "BB"}
    for symbol, tail in taken.tail.items():
        entries = list(tail)
        rows = [hot_cache.decode_tail_entry({hot_cache.TAIL_FIELD_TICK: t}) for _, t in entries]
        mine = [r.offset for r in recs if r.key == symbol.encode()]
        assert [offset for offset, _ in entries] == mine[-4:]
        assert [(r["symbol"], r["kafka_offset"]) for r in rows] == [(symbol, o) for o in mine[-4:]]
        latest = hot_cache.decode_tail_entry({hot_cache.TAIL_FIELD_TICK: taken.latest[symbol].tick})
        assert latest["kafka_offset"] == taken.latest[symbol].row["kafka_offset"]
        assert latest["symbol"] == symbol


def test_calls_put_the_quietest_symbols_first_in_a_small_call_and_each_symbol_once() -> None:
    first, chunk = redis_writer.FIRST_CALL_TICKS, redis_writer.CHUNK_TICKS
    pending = {f"BUSY{i}": 3_000 for i in range(12)} | {"IDLE": 1, "SLOW": 40, "NEW": 0}
    calls = plan_calls(pending)
    assert calls[0] == ["NEW", "IDLE", "SLOW"]
    assert sum(1 + pending[s] for s in calls[0]) <= first
    assert sorted(s for call in calls for s in call) == sorted(pending)
    for call in calls[1:]:
        assert sum(1 + pending[s] for s in call) <= chunk
    assert [len(call) for call in calls[1:]] == [6, 6]
    assert plan_calls({}) == []
    # one symbol bigger than the first call's bound still gets written, alone
    assert plan_calls({"HUGE": first * 3, "IDLE": 0}) == [["IDLE"], ["HUGE"]]
    assert plan_calls({"HUGE": first * 3}) == [["HUGE"]]


async def test_a_flush_of_several_calls_and_rounds_writes_everything_quiet_symbols_first(
    ingest_redis: str, redis_password: str, redis_client: aioredis.Redis, monkeypatch
) -> None:
    """Small bounds so one flush is several script calls in several pipelined rounds;
    the quiet symbol's row is published alone, before the busy ones'; every tail entry
    lands; and a script cache emptied under the writer (a Redis restart) is refilled."""
    monkeypatch.setattr(redis_writer, "FIRST_CALL_TICKS", 4)
    monkeypatch.setattr(redis_writer, "CHUNK_TICKS", 10)
    monkeypatch.setattr(redis_writer, "ROUND_TICKS", 20)
    prefix = unique_prefix()
    busy = [f"{prefix}B{i}" for i in range(5)]
    quiet = f"{prefix}Q"
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(hot_cache.TICKS_CHANNEL)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    cache = RedisWriter.from_url(ingest_redis, redis_password, 1.0, IngestMetrics())
    loads = 0
    script_load = cache.client.script_load

    async def counted_script_load(script: str) -> str:
        nonlocal loads
        loads += 1
        return await script_load(script)

    monkeypatch.setattr(cache.client, "script_load", counted_script_load)
    try:
        cache.add(batch(f"{prefix}W", [1], [0]))
        await cache.flush()
        await redis_client.script_flush()  # the writer's script is gone: NOSCRIPT next
        for i, symbol in enumerate(busy):
            cache.add(batch(symbol, list(range(1, 9)), list(range(100 * i, 100 * i + 8))))
        cache.add(batch(quiet, [1], [900]))
        await cache.flush()
        assert loads == 2
        for i, symbol in enumerate(busy):
            tail = await redis_client.xrange(hot_cache.tail_key(symbol))
            assert [int(f[b"kafka_offset"]) for _, f in tail] == list(range(100 * i, 100 * i + 8))
            assert (await latest(redis_client, symbol))["seq"] == 8
        assert (await latest(redis_client, quiet))["seq"] == 1
        messages = []
        while m := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0):
            rows = hot_cache.decode_channel_message(m["data"])
            messages.append({r["symbol"] for r in rows if r["symbol"].startswith(prefix)})
        messages = [m for m in messages if m][1:]  # after the warm-up flush's
        assert messages[0] == {quiet}
        assert set().union(*messages[1:]) == set(busy)
        assert len(messages) == 1 + len(busy)  # 9 ticks each: one busy symbol a call
    finally:
        await pubsub.aclose()
        await cache.stop()
