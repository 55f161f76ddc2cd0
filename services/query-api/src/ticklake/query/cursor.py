"""Opaque page cursors for /ticks.

A cursor is the sort key of the last row a page returned,
``(ts_ns, kafka_partition, kafka_offset)``, as URL-safe base64 of a small JSON
array with a version tag. The next page returns rows strictly after it, so
paging is stable while new ticks arrive and never repeats or skips a row.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final, NamedTuple

import orjson

from ticklake.query.params import InvalidParameter

_VERSION: Final = 1


class RowKey(NamedTuple):
    """Total order of tick rows: event time, then source position."""

    ts_ns: int
    kafka_partition: int
    kafka_offset: int


def encode_cursor(key: RowKey) -> str:
    raw = orjson.dumps([_VERSION, key.ts_ns, key.kafka_partition, key.kafka_offset])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> RowKey:
    """Inverse of :func:`encode_cursor`; anything else is a 422 naming ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InvalidParameter("cursor", "not a cursor this API returned") from None
    if (
        not isinstance(value, list)
        or len(value) != 4
        or value[0] != _VERSION
        or not all(type(v) is int and 0 <= v < 2**63 for v in value[1:])
    ):
        raise InvalidParameter("cursor", "not a cursor this API returned")
    return RowKey(value[1], value[2], value[3])
