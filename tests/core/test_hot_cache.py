"""The Redis hot-cache format ingest writes and the query API reads (ticklake.core.hot_cache)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import redis

from ticklake.core import hot_cache
from ticklake.core.tick_fields import ROW_FIELDS

ROW = {
    "symbol": "BRK.B",
    "ts_ns": 1_735_828_200_123_456_789,
    "price": 0.1 + 0.2,
    "size": 100.0,
    "exchange": "XNYS",
    "seq": None,
    "bid": float("nan"),
    "kafka_partition": 3,
    "kafka_offset": 2**40,
    "ingest_ns": 1_735_828_200_200_000_000,
    "ema_fast": 1e-300,
    "ticks_day": 7,
}


def _columns(rows: list[dict]) -> tuple[list[str], list[list]]:
    names = list(rows[0])
    return names, [[r[n] for r in rows] for n in names]


def test_the_latest_hash_round_trips_with_types_and_missing_values() -> None:
    fields = hot_cache.encode_latest_hash(ROW)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["timestamp"] == "2025-01-02T14:30:00.123456789Z"
    assert fields["seq"] == "" and fields["bid"] == ""
    raw = {k.encode(): v.encode() for k, v in fields.items()}  # as redis returns them
    decoded = hot_cache.decode_latest_hash(raw)
    assert decoded["price"] == 0.1 + 0.2  # exact: repr round-trips
    assert decoded["kafka_offset"] == 2**40 and decoded["ticks_day"] == 7
    assert decoded["seq"] is None and decoded["bid"] is None
    assert decoded["symbol"] == "BRK.B" and decoded["ema_fast"] == 1e-300


def test_every_row_column_decodes_to_its_declared_type() -> None:
    row = {f.name: f.python_type("7") if f.python_type is not str else "X" for f in ROW_FIELDS}
    decoded = hot_cache.decode_latest_hash(hot_cache.encode_latest_hash(row))
    for f in ROW_FIELDS:
        assert type(decoded[f.name]) is f.python_type, f.name


def test_tail_ticks_and_channel_fragments_are_json_with_null_for_missing() -> None:
    other = {**ROW, "symbol": "X", "seq": 5}
    ticks = hot_cache.encode_tail_ticks(*_columns([ROW, other]))
    assert len(ticks) == 2
    row = hot_cache.decode_tail_entry({b"kafka_offset": b"1", b"tick": ticks[0]})
    assert row["bid"] is None and row["ts_ns"] == ROW["ts_ns"] and row["price"] == 0.1 + 0.2
    message = b"[" + b",".join(hot_cache.channel_fragment(t, ROW["ts_ns"]) for t in ticks) + b"]"
    rows = hot_cache.decode_channel_message(message)
    assert [r["symbol"] for r in rows] == ["BRK.B", "X"]
    assert rows[0]["timestamp"].endswith(".123456789Z")
    assert not any(isinstance(v, float) and math.isnan(v) for v in rows[0].values())
    assert hot_cache.channel_fragment(b"{}", ROW["ts_ns"]).startswith(b'{"timestamp":')


def test_malformed_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tick"):
        hot_cache.decode_tail_entry({b"kafka_offset": b"1"})
    with pytest.raises(ValueError, match="JSON array"):
        hot_cache.decode_channel_message(b'{"symbol": "A"}')


def test_the_script_names_only_fields_this_module_defines() -> None:
    script = hot_cache.UPDATE_SCRIPT
    assert "@" not in script  # every placeholder was filled
    for name in ("ts_ns", "seq", "kafka_offset", "tick"):
        assert f"'{name}'" in script


@pytest.fixture
def client(redis_url: str, redis_password: str) -> redis.Redis:
    db = redis_url.rsplit("/", 1)[0] + "/11"
    c = redis.Redis.from_url(db, password=redis_password)
    c.flushdb()
    yield c
    c.flushdb()
    c.close()


def _write(client: redis.Redis, rows: list[dict]) -> int:
    """One script call with each row as its symbol's newest (and only tail entry)."""
    ticks = hot_cache.encode_tail_ticks(*_columns(rows))
    keys, args = hot_cache.update_script_args(
        ((r["symbol"], r, t, [r["kafka_offset"]], [t]) for r, t in zip(rows, ticks, strict=True)),
        tail_max_len=100,
    )
    return int(client.eval(hot_cache.UPDATE_SCRIPT, len(keys), *keys, *args))


def test_the_scripts_guard_keeps_the_row_latest_order_calls_newest(client: redis.Redis) -> None:
    """Every order of writing the same rows leaves the row :func:`latest_order` ranks first."""
    base = 1_735_828_200_000_000_000
    rng = random.Random(7)
    candidates = [
        {**ROW, "symbol": "G", "ts_ns": base + dt, "seq": seq, "kafka_offset": off}
        for dt, seq, off in itertools.product((0, 1, 10**9), (None, 0, 5), (3, 4))
    ]
    for trial in range(20):
        symbol = f"G{trial}"
        rows = [{**r, "symbol": symbol} for r in rng.sample(candidates, 5)]
        for row in rows:
            _write(client, [row])
        stored = hot_cache.decode_latest_hash(client.hgetall(hot_cache.latest_key(symbol)))
        best = max(
            rows, key=lambda r: hot_cache.latest_order(r["ts_ns"], r["seq"], r["kafka_offset"])
        )
        assert (stored["ts_ns"], stored["seq"], stored["kafka_offset"]) == (
            best["ts_ns"],
            best["seq"],
            best["kafka_offset"],
        )


def test_a_replayed_write_adds_no_tail_entry_and_publishes_nothing(client: redis.Redis) -> None:
    row = {**ROW, "symbol": "R", "seq": 1, "kafka_offset": 10}
    assert _write(client, [row]) == 1
    assert _write(client, [row]) == 0  # the same tick again: nothing changed
    entries = client.xrange(hot_cache.tail_key("R"))
    assert len(entries) == 1
    assert hot_cache.decode_tail_entry(entries[0][1])["kafka_offset"] == 10
    assert client.smembers(hot_cache.SYMBOLS_KEY) == {b"R"}


def test_tail_entries_arrive_whole_and_in_order_with_offsets_beyond_1e14(
    client: redis.Redis,
) -> None:
    """A symbol's tail entries travel packed (offsets as MessagePack, ticks joined by
    newlines); each must come out as its own stream entry, offset digits exact."""
    base = 10**15 + 7  # Lua's tostring would write this as 1e+15
    rows = [{**ROW, "symbol": "T", "seq": i, "kafka_offset": base + i} for i in range(3)]
    rows[1]["exchange"] = "line\nbreak"  # JSON escapes it: the newline join stays unambiguous
    ticks = hot_cache.encode_tail_ticks(*_columns(rows))
    offsets = [r["kafka_offset"] for r in rows]
    keys, args = hot_cache.update_script_args(
        [("T", rows[-1], ticks[-1], offsets, ticks)], tail_max_len=100
    )
    client.eval(hot_cache.UPDATE_SCRIPT, len(keys), *keys, *args)
    entries = [hot_cache.decode_tail_entry(f) for _, f in client.xrange(hot_cache.tail_key("T"))]
    assert [e["kafka_offset"] for e in entries] == offsets
    assert [e["exchange"] for e in entries] == [r["exchange"] for r in rows]
    with pytest.raises(ValueError, match="2 tail offsets for 3 ticks"):
        hot_cache.update_script_args(
            [("T", rows[-1], ticks[-1], offsets[:2], ticks)], tail_max_len=9
        )
    with pytest.raises(ValueError, match="above"):
        hot_cache.update_script_args(
            [("T", rows[-1], ticks[-1], [2**53 + 1], ticks[:1])], tail_max_len=9
        )
