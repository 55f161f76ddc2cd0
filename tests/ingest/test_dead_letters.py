"""Bad input of every kind ends in the dead-letter topic; the good ticks around it don't."""

from __future__ import annotations

from pathlib import Path

from ingest_kit import (
    RunningIngest,
    consume_all,
    create_topic,
    lake_row_count,
    produce,
    settings_for,
    tick_messages,
    tick_stream,
    ticks_frame,
    unique_prefix,
    unique_topic,
    wait_until,
)

from ticklake.core import topics

GOOD = (
    '{"v":1,"symbol":"SYM","ts_ns":1735828200000000000,"price":10.0,"size":1.0,'
    '"exchange":"XNAS","seq":1'
)


def variant(old: str, new: str) -> bytes:
    assert old in GOOD
    return (GOOD.replace(old, new, 1) + "}").encode()


# (name, key, value, expected reason)
BAD: list[tuple[str, bytes | None, bytes | None, str]] = [
    ("empty", None, b"", "empty_payload"),
    ("tombstone", b"SYM", None, "empty_payload"),
    ("not utf-8", None, b'\xff\xfe{"symbol": 1}', "not_utf8"),
    ("malformed json", None, b"{not json", "bad_json"),
    ("truncated json", None, GOOD.encode(), "bad_json"),
    ("json array", None, b"[1, 2, 3]", "not_an_object"),
    ("json string", None, b'"AAPL 189.1"', "not_an_object"),
    ("json null", None, b"null", "not_an_object"),
    ("missing price", None, variant('"price":10.0,', ""), "missing_field"),
    ("missing symbol", None, variant('"symbol":"SYM",', ""), "missing_field"),
    ("price as text", None, variant('"price":10.0', '"price":"10"'), "wrong_type"),
    ("size as object", None, variant('"size":1.0', '"size":{"n":1}'), "wrong_type"),
    ("fractional seq", None, variant('"seq":1', '"seq":1.5'), "wrong_type"),
    ("schema v2", None, variant('"v":1', '"v":2'), "unsupported_version"),
    ("symbol with spaces", None, variant('"SYM"', '"NOT A SYMBOL"'), "bad_symbol"),
    ("empty symbol", None, variant('"SYM"', '""'), "bad_symbol"),
    ("symbol too long", None, variant('"SYM"', '"' + "A" * 30 + '"'), "bad_symbol"),
    ("bad exchange", None, variant('"XNAS"', '"X NAS!"'), "bad_exchange"),
    ("infinite price", None, variant('"price":10.0', '"price":1e999'), "non_finite_number"),
    ("zero price", None, variant('"price":10.0', '"price":0'), "non_positive_price"),
    ("negative price", None, variant('"price":10.0', '"price":-3.5'), "non_positive_price"),
    ("negative size", None, variant('"size":1.0', '"size":-1'), "negative_size"),
    ("negative bid", None, variant('"seq":1', '"seq":1,"bid":-1'), "non_positive_quote"),
    ("negative ask size", None, variant('"seq":1', '"seq":1,"ask_size":-5'), "negative_quote_size"),
    ("crossed book", None, variant('"seq":1', '"seq":1,"bid":11,"ask":10'), "crossed_book"),
    ("negative seq", None, variant('"seq":1', '"seq":-7'), "negative_sequence"),
    (
        "epoch zero",
        None,
        variant('"ts_ns":1735828200000000000', '"ts_ns":0'),
        "timestamp_out_of_range",
    ),
    (
        "year 2200",
        None,
        variant('"ts_ns":1735828200000000000', '"ts_ns":7258118400000000000'),
        "timestamp_out_of_range",
    ),
    (
        "seq beyond int64",
        None,
        variant('"seq":1', '"seq":18446744073709551616'),
        "sequence_out_of_range",
    ),
    (
        "legacy bad time",
        None,
        b'{"symbol":"SYM","price":1.0,"size":1,"exchange":"X","ts":"yesterday"}',
        "bad_timestamp",
    ),
    (
        "legacy naive time",
        None,
        b'{"symbol":"SYM","price":1.0,"size":1,"exchange":"X","ts":"2025-01-02T14:30:00"}',
        "naive_timestamp",
    ),
    ("key names another symbol", b"OTHER", variant('"seq":1', '"seq":1'), "key_mismatch"),
]


async def test_every_kind_of_bad_input_is_dead_lettered_and_good_ticks_all_land(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    assert len({reason for *_, reason in BAD}) >= 20 and len(BAD) >= 30
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    symbol = unique_prefix()
    good = tick_messages(tick_stream([symbol], len(BAD) + 1, seed=2))
    messages = []
    expected: dict[int, tuple[str, bytes | None]] = {}
    for i, (name, key, value, reason) in enumerate(BAD):
        messages.append(good[i])
        expected[len(messages)] = (reason, value)
        messages.append((key, value, [("origin", name.encode())]))
    messages.append(good[-1])
    await produce(kafka_bootstrap, topic, messages)

    lake = tmp_path / "lake"
    settings = settings_for(kafka_bootstrap, topic, lake, ingest_redis, redis_password)
    async with RunningIngest(settings) as running:
        await wait_until(lambda: lake_row_count(lake) >= len(good), 60, "good ticks in the lake")
        await wait_until(
            lambda: running.service.consumer.committed.get(0) == len(messages),
            30,
            "everything committed",
        )
        counted = sum(
            running.counter("ticklake_ingest_dead_letters_total", reason=r)
            for r in {reason for *_, reason in BAD}
        )
        assert counted == len(BAD)

    assert ticks_frame(lake)["seq"].tolist() == list(range(1, len(good) + 1))
    letters = await consume_all(kafka_bootstrap, f"{topic}.dlq", len(BAD))
    assert len(letters) == len(BAD)
    for letter in letters:
        headers = dict(letter.headers)
        source_offset = int(headers[topics.HEADER_DLQ_SOURCE_OFFSET])
        reason, value = expected[source_offset]
        name = headers["origin"].decode()
        assert headers[topics.HEADER_DLQ_REASON].decode() == reason, name
        assert letter.value == value, name
        assert headers[topics.HEADER_DLQ_SOURCE_TOPIC].decode() == topic
        assert headers[topics.HEADER_DLQ_SOURCE_PARTITION] == b"0"
        assert headers[topics.HEADER_DLQ_DETAIL], name
