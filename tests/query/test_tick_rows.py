"""Merging lake rows with Redis tail rows: order, identity, windows and pages."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ticklake.query.cursor import RowKey
from ticklake.query.tick_rows import (
    clean_row,
    identity,
    last_at_or_before,
    merge_page,
    newest,
    row_key,
)


def row(offset: int, ts: int, partition: int = 0, **extra: object) -> dict:
    return {
        "symbol": "A",
        "ts_ns": ts,
        "kafka_partition": partition,
        "kafka_offset": offset,
        **extra,
    }


def test_identity_is_the_kafka_position_else_the_sequence() -> None:
    assert identity(row(5, 1)) == identity(row(5, 99, price=2.0))
    assert identity(row(5, 1)) != identity(row(5, 1, partition=1))
    no_position = {"symbol": "A", "ts_ns": 1, "seq": 7}
    assert identity(no_position) == ("seq", "A", 7)


def test_merge_prefers_lake_rows_and_sorts() -> None:
    lake = [row(1, 10, src="lake"), row(2, 20, src="lake")]
    tail = [row(2, 20, src="tail"), row(3, 15, src="tail"), row(4, 40, src="tail")]
    page, more = merge_page(lake, tail, start_ns=0, end_ns=100, after=None, limit=10)
    assert [(r["kafka_offset"], r["src"]) for r in page] == [
        (1, "lake"), (3, "tail"), (2, "lake"), (4, "tail"),
    ]  # fmt: skip
    assert more is False


def test_merge_applies_window_cursor_and_limit_to_tail_rows() -> None:
    tail = [row(i, i * 10) for i in range(10)]
    page, more = merge_page([], tail, start_ns=20, end_ns=80, after=RowKey(30, 0, 3), limit=2)
    assert [r["kafka_offset"] for r in page] == [4, 5]
    assert more is True


@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 1000)), unique_by=lambda t: t[0]),
    st.integers(1, 7),
    st.data(),
)
def test_paging_a_lake_and_tail_split_visits_every_row_once(
    rows: list[tuple[int, int]], limit: int, data: st.DataObject
) -> None:
    all_rows = [row(off, ts) for off, ts in rows]
    in_lake = data.draw(st.lists(st.sampled_from(all_rows), unique_by=id)) if all_rows else []
    in_tail = [r for r in all_rows if r not in in_lake or data.draw(st.booleans())]
    seen, after = [], None
    for _ in range(len(all_rows) + 2):
        lake_page = sorted(
            (r for r in in_lake if after is None or row_key(r) > after), key=row_key
        )[: limit + 1]
        page, more = merge_page(
            lake_page, in_tail, start_ns=0, end_ns=10**6, after=after, limit=limit
        )
        seen += page
        if not more:
            break
        after = row_key(page[-1])
    assert [r["kafka_offset"] for r in seen] == [
        r["kafka_offset"] for r in sorted(all_rows, key=row_key)
    ]


def test_newest_and_as_of() -> None:
    rows = [row(1, 10), row(2, 30), row(3, 20), row(4, 30)]
    assert newest([None, *rows])["kafka_offset"] == 4
    assert last_at_or_before(rows, 25)["kafka_offset"] == 3
    assert last_at_or_before(rows, 30)["kafka_offset"] == 4
    assert last_at_or_before(rows, 9) is None


def test_clean_row_turns_non_finite_floats_into_null() -> None:
    assert clean_row({"a": math.nan, "b": math.inf, "c": 1.5, "d": "x"}) == {
        "a": None, "b": None, "c": 1.5, "d": "x",
    }  # fmt: skip
