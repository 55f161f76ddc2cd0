"""Encoding of what ingest puts in Redis: the latest hash, the tail stream, the channel.

Ingest (the writer) and the query API (the reader) both use this module, so the
three shapes below are defined once:

* ``sym:{SYMBOL}:latest`` (:func:`ticklake.core.redis_keys.latest_key`) is a hash
  of strings: every lake column of the newest tick (see
  :mod:`ticklake.core.lake_layout`; ingest's feature columns included) plus
  ``timestamp``, the ISO-8601 UTC time older dashboards read. A missing value
  (no quote, no previous tick yet) is the empty string. Integers are decimal,
  floats are Python's shortest round-trip ``repr``.
* ``sym:{SYMBOL}:tail`` (:func:`ticklake.core.redis_keys.tail_key`) is a Redis
  Stream of recent ticks; each entry has two fields: ``kafka_offset`` (decimal;
  ingest uses it to keep the stream free of replayed duplicates) and ``tick``, a
  JSON object of the lake columns (``null`` for a missing value).
* :data:`ticklake.core.redis_keys.TICKS_CHANNEL` carries one message per ingest
  batch: a JSON array of the same objects as the tail, one per symbol whose
  latest tick changed, each with ``timestamp`` added.

Decoding returns plain dicts with typed values: ``int`` for the integer columns
(:data:`INT_FIELDS`), ``str`` for :data:`STR_FIELDS`, ``float`` for the rest, and
``None`` for missing values.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from ticklake.core.redis_keys import FIELD_OFFSET, FIELD_TIMESTAMP

TAIL_FIELD_OFFSET: Final = FIELD_OFFSET
"""Tail entry field with the tick's Kafka offset (decimal string)."""
TAIL_FIELD_TICK: Final = "tick"
"""Tail entry field with the tick's lake columns as a JSON object."""

INT_FIELDS: Final = frozenset(
    {"ts_ns", "seq", "kafka_partition", "kafka_offset", "ingest_ns", "ticks_day"}
)
"""Columns decoded as ``int``."""
STR_FIELDS: Final = frozenset({"symbol", "exchange", FIELD_TIMESTAMP})
"""Columns decoded as ``str``; every other column is a ``float``."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def iso_timestamp(ts_ns: int) -> str:
    """ISO-8601 UTC time with nanoseconds, e.g. ``2025-01-02T14:30:00.123456789Z``."""
    seconds, frac_ns = divmod(ts_ns, 1_000_000_000)
    return f"{_iso_second(seconds)}.{frac_ns:09d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    # Live ticks share a handful of seconds: format each once (strftime is the slow part).
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def encode_latest_hash(row: Mapping[str, Any]) -> dict[str, str]:
    """The hash fields for one tick row (lake column -> value); adds ``timestamp``."""
    fields = {name: _to_text(value) for name, value in row.items()}
    fields[FIELD_TIMESTAMP] = iso_timestamp(int(row["ts_ns"]))
    return fields


def _typed(name: str, text: str) -> Any:
    if text == "":
        return None
    if name in INT_FIELDS:
        return int(text)
    if name in STR_FIELDS:
        return text
    try:
        return float(text)
    except ValueError:
        return text


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_latest_hash(fields: Mapping[str | bytes, str | bytes]) -> dict[str, Any]:
    """Inverse of :func:`encode_latest_hash` (accepts ``bytes`` keys and values as
    returned by a Redis client without ``decode_responses``)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = _text(key)
        out[name] = _typed(name, _text(value))
    return out


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    # NaN is not JSON; a missing value is null.
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def encode_tail_entry(row: Mapping[str, Any]) -> dict[str, bytes]:
    """Fields of one tail stream entry for a tick row."""
    return {
        TAIL_FIELD_OFFSET: str(int(row[FIELD_OFFSET])).encode(),
        TAIL_FIELD_TICK: _encoder.encode(_json_row(row)),
    }


def encode_tail_tick(row: Mapping[str, Any]) -> bytes:
    """Just the ``tick`` field of :func:`encode_tail_entry` (ingest's hot path).

    msgspec already writes NaN as ``null``, so the row is encoded as it is.
    """
    return _encoder.encode(row)


def decode_tail_entry(fields: Mapping[str | bytes, str | bytes]) -> dict[str, Any]:
    """The tick row of one tail stream entry (as returned by ``XRANGE``)."""
    for key, value in fields.items():
        if _text(key) == TAIL_FIELD_TICK:
            decoded: dict[str, Any] = _decoder.decode(value)
            return decoded
    raise ValueError(f"tail entry has no {TAIL_FIELD_TICK!r} field: {sorted(map(_text, fields))}")


def encode_channel_message(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """One pub/sub message: a JSON array of tick rows, each with ``timestamp`` added."""
    return _encoder.encode(
        [{**_json_row(row), FIELD_TIMESTAMP: iso_timestamp(int(row["ts_ns"]))} for row in rows]
    )


def channel_fragment(tick: bytes, ts_ns: int) -> bytes:
    """One element of a channel message from an encoded tail ``tick`` field: the same
    object with ``timestamp`` added. A message is ``[`` + fragments joined by ``,`` + ``]``
    (ingest's Lua script joins them after deciding which rows changed)."""
    stamp = f'"{FIELD_TIMESTAMP}":"{iso_timestamp(ts_ns)}"}}'.encode()
    body = tick[:-1]
    return body + (b"," if body != b"{" else b"") + stamp


def channel_message_from_tail_ticks(ticks: Iterable[tuple[bytes, int]]) -> bytes:
    """The same message as :func:`encode_channel_message`, built from already encoded
    tail ``tick`` fields and their ``ts_ns`` (no re-encoding)."""
    return b"[" + b",".join(channel_fragment(t, ts) for t, ts in ticks) + b"]"


def decode_channel_message(payload: bytes | str) -> list[dict[str, Any]]:
    """Inverse of :func:`encode_channel_message`."""
    decoded = _decoder.decode(payload)
    if not isinstance(decoded, list):
        raise ValueError("a ticks channel message is a JSON array of tick objects")
    return decoded
