"""The Redis encodings shared by ingest (writer) and the query API (reader)."""

from __future__ import annotations

import math

import pytest

from ticklake.core import latest_hash

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


def test_the_latest_hash_round_trips_with_types_and_missing_values() -> None:
    fields = latest_hash.encode_latest_hash(ROW)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["timestamp"] == "2025-01-02T14:30:00.123456789Z"
    assert fields["seq"] == "" and fields["bid"] == ""
    raw = {k.encode(): v.encode() for k, v in fields.items()}  # as redis returns them
    decoded = latest_hash.decode_latest_hash(raw)
    assert decoded["price"] == 0.1 + 0.2  # exact: repr round-trips
    assert decoded["kafka_offset"] == 2**40 and decoded["ticks_day"] == 7
    assert decoded["seq"] is None and decoded["bid"] is None
    assert decoded["symbol"] == "BRK.B" and decoded["ema_fast"] == 1e-300


def test_tail_entries_and_channel_messages_use_json_with_null_for_missing() -> None:
    entry = latest_hash.encode_tail_entry(ROW)
    assert entry["kafka_offset"] == str(2**40).encode()
    assert entry["tick"] == latest_hash.encode_tail_tick(ROW)
    row = latest_hash.decode_tail_entry({b"kafka_offset": b"1", b"tick": entry["tick"]})
    assert row["bid"] is None and row["ts_ns"] == ROW["ts_ns"] and row["price"] == 0.1 + 0.2
    message = latest_hash.encode_channel_message([ROW, ROW])
    rows = latest_hash.decode_channel_message(message)
    assert len(rows) == 2 and rows[0]["timestamp"].endswith(".123456789Z")
    assert not any(isinstance(v, float) and math.isnan(v) for v in rows[0].values())


def test_malformed_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tick"):
        latest_hash.decode_tail_entry({b"kafka_offset": b"1"})
    with pytest.raises(ValueError, match="JSON array"):
        latest_hash.decode_channel_message(b'{"symbol": "A"}')


def test_the_channel_message_from_encoded_tail_ticks_equals_the_plain_encoding() -> None:
    other = {**ROW, "symbol": "X", "seq": 5}
    fast = latest_hash.channel_message_from_tail_ticks(
        (latest_hash.encode_tail_tick(r), r["ts_ns"]) for r in (ROW, other)
    )
    assert latest_hash.decode_channel_message(fast) == latest_hash.decode_channel_message(
        latest_hash.encode_channel_message([ROW, other])
    )
