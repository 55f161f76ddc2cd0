"""The in-process copy of the latest hashes: trusted only while the channel is up."""

from __future__ import annotations

import time

import orjson

from ticklake.query.latest_mirror import LatestMirror


def row(offset: int, price: float = 1.0, partition: int = 0) -> dict:
    return {"symbol": "A", "price": price, "kafka_partition": partition, "kafka_offset": offset}


def test_nothing_is_kept_while_dark() -> None:
    m = LatestMirror(ttl_s=10)
    m.apply([row(1)])
    m.offer("A", row(1), m.generation)
    assert m.get("A") is None


def test_channel_rows_are_served_and_encoded_once() -> None:
    m = LatestMirror(ttl_s=10)
    m.go_live()
    m.apply([row(1, 2.5)])
    assert m.get("A") == row(1, 2.5)
    body = m.body("A")
    assert orjson.loads(body) == {"symbol": "A", "source": "redis", "tick": row(1, 2.5)}
    assert m.body("A") is body
    m.apply([row(2, 3.0)])
    assert orjson.loads(m.body("A"))["tick"]["price"] == 3.0


def test_a_slow_redis_read_never_undoes_a_newer_channel_row() -> None:
    m = LatestMirror(ttl_s=10)
    m.go_live()
    generation = m.generation
    m.apply([row(5)])  # arrives while the HGETALL of offset 4 is in flight
    m.offer("A", row(4), generation)
    assert m.get("A")["kafka_offset"] == 5


def test_reads_from_an_older_generation_are_dropped() -> None:
    m = LatestMirror(ttl_s=10)
    m.go_live()
    generation = m.generation
    m.go_dark()
    m.go_live()  # reconnected: updates between the two may be lost
    m.offer("A", row(1), generation)
    assert m.get("A") is None
    assert len(m) == 0


def test_going_dark_forgets_everything() -> None:
    m = LatestMirror(ttl_s=10)
    m.go_live()
    m.apply([row(1)])
    m.go_dark()
    assert m.get("A") is None and m.body("A") is None


def test_entries_expire_without_updates() -> None:
    m = LatestMirror(ttl_s=0.05)
    m.go_live()
    m.apply([row(1)])
    assert m.get("A") is not None
    time.sleep(0.08)
    assert m.get("A") is None and m.body("A") is None


def test_a_channel_row_always_wins() -> None:
    """Ingest publishes only rows its (seq, offset) guard accepted, so even a lower
    offset (a recreated topic) replaces the copy."""
    m = LatestMirror(ttl_s=10)
    m.go_live()
    m.apply([row(9)])
    m.apply([row(2, 4.0)])
    assert m.get("A") == row(2, 4.0)


def test_an_expired_entry_is_replaced_by_a_redis_read() -> None:
    m = LatestMirror(ttl_s=0.05)
    m.go_live()
    m.apply([row(1)])
    time.sleep(0.08)
    m.offer("A", row(3, 7.0), m.generation)
    assert m.get("A") == row(3, 7.0)
