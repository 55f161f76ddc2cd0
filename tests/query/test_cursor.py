"""Page cursors: opaque, round-trip, and anything else is a 422 naming ``cursor``."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake.query.cursor import RowKey, decode_cursor, encode_cursor
from ticklake.query.params import InvalidParameter

keys = st.builds(
    RowKey, st.integers(0, 2**63 - 1), st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1)
)


@given(keys)
def test_round_trip(key: RowKey) -> None:
    text = encode_cursor(key)
    assert decode_cursor(text) == key
    assert text.isascii() and "=" not in text and "&" not in text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "bm90IGpzb24",  # "not json"
        base64.urlsafe_b64encode(b"[2,1,2,3]").decode(),  # other version
        base64.urlsafe_b64encode(b"[1,1,2]").decode(),
        base64.urlsafe_b64encode(b"[1,-1,2,3]").decode(),
        base64.urlsafe_b64encode(b'[1,"1",2,3]').decode(),
        base64.urlsafe_b64encode(b"[1,1.5,2,3]").decode(),
        base64.urlsafe_b64encode(b'{"a":1}').decode(),
    ],
)
def test_anything_else_is_rejected(text: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        decode_cursor(text)
    assert e.value.name == "cursor"
