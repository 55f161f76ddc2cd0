"""The Redis hot cache's format, defined once: keys, fields, encodings, ordering guard.

Ingest writes it (``ticklake.ingest.sinks.redis_writer`` runs :data:`UPDATE_SCRIPT`
with the encodings below) and the query API reads it (``ticklake.query.redis_reader``
and the stream hub decode with the functions below); neither spells a key, a field
or an encoding itself.

* ``sym:{SYMBOL}:latest`` (:func:`latest_key`) is a hash of strings: every lake
  column of the symbol's newest tick (:data:`ticklake.core.tick_fields.ROW_FIELDS`,
  then ingest's feature columns) plus ``timestamp``, the ISO-8601 UTC time older
  dashboards read. A missing value (no quote, no previous tick yet) is the empty
  string. Integers are decimal, floats are Python's shortest round-trip ``repr``.
  "Newest" is :func:`latest_order`; the script applies the same order in Lua.
* ``sym:{SYMBOL}:tail`` (:func:`tail_key`) is a Redis Stream of recent ticks; each
  entry has two fields: ``kafka_offset`` (decimal; the writer uses it to keep the
  stream free of replayed duplicates) and ``tick``, a JSON object of the lake
  columns (``null`` for a missing value).
* :data:`SYMBOLS_KEY` is the set of every symbol seen.
* :data:`TICKS_CHANNEL` carries one message per write: a JSON array of the same
  objects as the tail, each with ``timestamp`` added, one per symbol whose latest
  hash the write changed.

Decoding returns plain dicts with typed values: ``int`` for :data:`INT_FIELDS`,
``str`` for :data:`STR_FIELDS`, ``float`` for the rest, ``None`` for missing values.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from ticklake.core.tick_fields import ROW_FIELDS

# --- keys -------------------------------------------------------------------------------

SYMBOLS_KEY: Final = "ticklake:symbols"
"""Set of every symbol ingest has seen."""

TICKS_CHANNEL: Final = "ticklake:ticks"
"""Pub/sub channel: one message per write, the rows whose latest hash changed."""

TAIL_MAX_LEN: Final = 10_000
"""Default approximate length cap of a symbol's recent-ticks stream."""


def latest_key(symbol: str) -> str:
    """Hash with the newest tick of ``symbol`` (and its features)."""
    return f"sym:{symbol}:latest"


def tail_key(symbol: str) -> str:
    """Redis Stream with the recent ticks of ``symbol`` that may not be in the lake yet."""
    return f"sym:{symbol}:tail"


# --- fields -----------------------------------------------------------------------------

FIELD_TS_NS: Final = "ts_ns"
FIELD_SEQ: Final = "seq"
FIELD_OFFSET: Final = "kafka_offset"
FIELD_TIMESTAMP: Final = "timestamp"
"""ISO-8601 UTC time of the tick (what older dashboards read); the only hash field
that is not a lake column."""

TAIL_FIELD_OFFSET: Final = FIELD_OFFSET
"""Tail entry field with the tick's Kafka offset (decimal string)."""
TAIL_FIELD_TICK: Final = "tick"
"""Tail entry field with the tick's lake columns as a JSON object."""

INT_FEATURES: Final = frozenset({"ticks_day"})
"""Ingest's integer feature columns (core cannot import ingest's feature table;
``tests/test_tick_fields.py`` fails if this set and that table disagree)."""
INT_FIELDS: Final = frozenset(f.name for f in ROW_FIELDS if f.python_type is int) | INT_FEATURES
"""Columns decoded as ``int``."""
STR_FIELDS: Final = frozenset(f.name for f in ROW_FIELDS if f.python_type is str) | {
    FIELD_TIMESTAMP
}
"""Columns decoded as ``str``; every other column is a ``float``."""

# --- the ordering guard -----------------------------------------------------------------

NO_SEQ: Final = -1
"""What a missing ``seq`` counts as when ordering (below every real one)."""


def latest_order(ts_ns: int, seq: int | None, kafka_offset: int) -> tuple[int, int, int]:
    """The key "newest" is decided by: (event time, sequence, Kafka offset).

    A replay (same ticks again) or a late straggler never moves the latest hash
    back; a restarted source whose sequence starts again at 1, with later event
    times, moves it on. :data:`UPDATE_SCRIPT` compares the same three fields.
    """
    return (ts_ns, NO_SEQ if seq is None else seq, kafka_offset)


# --- encodings --------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Encoder()

MAX_TAIL_OFFSET: Final = 2**53
"""Largest Kafka offset the script takes exactly (Lua numbers are doubles)."""
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
    fields[FIELD_TIMESTAMP] = iso_timestamp(int(row[FIELD_TS_NS]))
    return fields


@functools.cache
def _row_struct(names: tuple[str, ...]) -> type[msgspec.Struct]:
    """A Struct type with these columns: msgspec encodes it as a JSON object, like a
    dict, at a fraction of the cost of building one dict per row."""
    return msgspec.defstruct("TailTick", [(name, Any) for name in names])


def encode_tail_ticks(names: Sequence[str], columns: Sequence[Sequence[Any]]) -> list[bytes]:
    """The tail's ``tick`` field (a JSON object of the lake columns) for every row.

    ``columns`` holds one list per name, rows aligned; a missing value is ``None``
    or NaN (msgspec writes NaN as ``null``). One msgspec call encodes all rows.
    """
    row_type = _row_struct(tuple(names))
    encoded = _encoder.encode_lines([row_type(*values) for values in zip(*columns, strict=True)])
    lines = encoded.split(b"\n")
    lines.pop()  # after the last newline (JSON escapes newlines inside strings)
    return lines


def channel_fragment(tick: bytes, ts_ns: int) -> bytes:
    """One element of a channel message from an encoded tail ``tick`` field: the same
    object with ``timestamp`` added. A message is ``[`` + fragments joined by ``,`` + ``]``
    (:data:`UPDATE_SCRIPT` joins those of the rows that changed)."""
    stamp = f'"{FIELD_TIMESTAMP}":"{iso_timestamp(ts_ns)}"}}'.encode()
    body = tick[:-1]
    return body + (b"," if body != b"{" else b"") + stamp


RedisFields = Mapping[str, str] | Mapping[bytes, bytes] | Mapping[str | bytes, str | bytes]
"""A hash or stream entry as a Redis client returns it (``str`` with ``decode_responses``)."""


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


def decode_latest_hash(fields: RedisFields) -> dict[str, Any]:
    """Inverse of :func:`encode_latest_hash` (accepts ``bytes`` keys and values as
    returned by a Redis client without ``decode_responses``)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = _text(key)
        out[name] = _typed(name, _text(value))
    return out


def decode_tail_entry(fields: RedisFields) -> dict[str, Any]:
    """The tick row of one tail stream entry (as returned by ``XRANGE``)."""
    for key, value in fields.items():
        if _text(key) == TAIL_FIELD_TICK:
            decoded: dict[str, Any] = _decoder.decode(value)
            return decoded
    raise ValueError(f"tail entry has no {TAIL_FIELD_TICK!r} field: {sorted(map(_text, fields))}")


def decode_channel_message(payload: bytes | str) -> list[dict[str, Any]]:
    """The rows of one :data:`TICKS_CHANNEL` message."""
    decoded = _decoder.decode(payload)
    if not isinstance(decoded, list):
        raise ValueError("a ticks channel message is a JSON array of tick objects")
    return decoded


# --- who may do what: Redis ACL rules --------------------------------------------------

KEY_PATTERNS: Final = ("sym:*", SYMBOLS_KEY)
"""Every key of the layout above (the latest hashes and tails are under ``sym:``)."""


def acl_rules(role: str) -> str:
    """The ``ACL SETUSER`` rules (after ``on >password``) for a service's Redis user.

    ``writer`` (ingest): read and write the layout's keys, run the update
    script, publish on the ticks channel. ``reader`` (the query API): read the
    layout's keys and subscribe to the channel; every write is refused
    (``NOPERM``). Neither may touch other keys or channels or run dangerous
    commands (``FLUSHALL``, ``CONFIG``, ``KEYS``, ``SCRIPT FLUSH`` ...).
    """
    keys = " ".join(f"~{k}" for k in KEY_PATTERNS)
    common = f"resetkeys resetchannels &{TICKS_CHANNEL} -@all +@connection"
    if role == "writer":
        rights = "+@read +@write +evalsha +eval +script|load +publish"
        return f"{common} {keys} {rights} -@dangerous"
    if role == "reader":
        read_keys = " ".join(f"%R~{k}" for k in KEY_PATTERNS)
        rights = "+@read +subscribe +unsubscribe"
        return f"{common} {read_keys} {rights} -@dangerous"
    raise ValueError(f"unknown Redis role {role!r}: writer or reader")


# --- the write, as one server-side script -----------------------------------------------

SEPARATOR: Final = "\x1f"
"""Joins the latest hash's names and values into one script argument each; no field
name or value (numbers, symbols, exchange codes, ISO times) can contain it."""

UPDATE_SCRIPT: Final = (
    """
-- One call writes a batch of symbols, then publishes what changed.
-- KEYS: the symbols set, then per symbol its latest hash and its tail stream
-- ARGV: tail max length, channel, latest-hash field names joined by \\31, then per
--       symbol: symbol, field values joined by \\31, its channel fragment, and its
--       new tail entries in offset order as two arguments (not two per tick: see
--       update_script_args): their kafka offsets as a MessagePack array, their tick
--       JSON joined by newlines (JSON escapes a newline inside a string)
local function split(s, sep)
  local out, start = {}, 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then out[#out + 1] = string.sub(s, start); return out end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end
local names = split(ARGV[3], '\\31')
local ts_at, seq_at, off_at
for i = 1, #names do
  if names[i] == '@TS@' then ts_at = i
  elseif names[i] == '@SEQ@' then seq_at = i
  elseif names[i] == '@OFF@' then off_at = i end
end
local changed = {}
local a = 4
for k = 2, #KEYS, 2 do
  local symbol, values, fragment = ARGV[a], split(ARGV[a + 1], '\\31'), ARGV[a + 2]
  local offsets = cmsgpack.unpack(ARGV[a + 3])
  local ticks = {}
  if #offsets > 0 then ticks = split(ARGV[a + 4], '\\n') end
  a = a + 5
  -- the ordering guard: newer by (ts_ns, seq or @NOSEQ@, kafka_offset), as latest_order
  local new_ts = values[ts_at]
  local new_seq, new_off = tonumber(values[seq_at]) or @NOSEQ@, tonumber(values[off_at])
  local cur = redis.call('HMGET', KEYS[k], '@TS@', '@SEQ@', '@OFF@')
  local newer = true
  if cur[1] then
    -- ts_ns has 19 digits: compare as equal-length strings, not as Lua doubles
    local cur_ts = cur[1]
    if #new_ts ~= #cur_ts then
      newer = #new_ts > #cur_ts
    elseif new_ts ~= cur_ts then
      newer = new_ts > cur_ts
    else
      local cur_seq, cur_off = tonumber(cur[2]) or @NOSEQ@, tonumber(cur[3]) or @NOSEQ@
      newer = new_seq > cur_seq or (new_seq == cur_seq and new_off > cur_off)
    end
  end
  if newer then
    local fields = {}
    for i = 1, #names do
      fields[2 * i - 1] = names[i]
      fields[2 * i] = values[i]
    end
    redis.call('HSET', KEYS[k], unpack(fields))
    changed[#changed + 1] = fragment
  end
  redis.call('SADD', KEYS[1], symbol)
  local last_off = -1
  local last = redis.call('XREVRANGE', KEYS[k + 1], '+', '-', 'COUNT', 1)
  if #last > 0 then
    local f = last[1][2]
    for j = 1, #f, 2 do
      if f[j] == '@TAIL_OFF@' then last_off = tonumber(f[j + 1]) end
    end
  end
  for i = 1, #offsets do
    local off = offsets[i]
    if off > last_off then
      -- %d: an offset is an integer; tostring would write large ones as 1e+14
      redis.call('XADD', KEYS[k + 1], 'MAXLEN', '~', ARGV[1], '*',
                 '@TAIL_OFF@', string.format('%d', off), '@TAIL_TICK@', ticks[i])
      last_off = off
    end
  end
end
if #changed > 0 then
  redis.call('PUBLISH', ARGV[2], '[' .. table.concat(changed, ',') .. ']')
end
return #changed
""".replace("@TS@", FIELD_TS_NS)
    .replace("@SEQ@", FIELD_SEQ)
    .replace("@OFF@", FIELD_OFFSET)
    .replace("@NOSEQ@", str(NO_SEQ))
    .replace("@TAIL_OFF@", TAIL_FIELD_OFFSET)
    .replace("@TAIL_TICK@", TAIL_FIELD_TICK)
)
"""The whole write of a batch in one round trip. Its field names and the guard's
order come from this module's constants; ``tests/core/test_hot_cache.py`` runs it
on a real Redis against :func:`latest_order`."""


def update_script_args(
    updates: Iterable[tuple[str, Mapping[str, Any], bytes, Sequence[int], Sequence[bytes]]],
    *,
    tail_max_len: int,
    channel: str = TICKS_CHANNEL,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one :data:`UPDATE_SCRIPT` call.

    ``updates`` holds, per symbol: the symbol, its newest row (lake columns), that
    row's encoded tail ``tick`` (reused for the channel fragment), and its new tail
    entries in offset order as two aligned sequences, kafka offsets and ticks.

    A symbol's tail entries travel as two arguments, a MessagePack array of offsets
    and the ticks joined by newlines: the client packs every argument of a command
    in Python, and two arguments per tick made that packing a tenth of ingest's CPU
    in a backlog drain (``bench/bench_profile.py``). Redis's cmsgpack reads no
    MessagePack binaries, hence the newlines. Offsets are integers below 2**53 (Lua's
    numbers are doubles).
    """
    keys: list[str] = [SYMBOLS_KEY]
    args: list[Any] = [tail_max_len, channel, ""]
    names = ""
    for symbol, row, tick, offsets, ticks in updates:
        fields = encode_latest_hash(row)
        names = names or SEPARATOR.join(fields)
        keys.append(latest_key(symbol))
        keys.append(tail_key(symbol))
        args.append(symbol)
        args.append(SEPARATOR.join(fields.values()))
        args.append(channel_fragment(tick, int(row[FIELD_TS_NS])))
        if len(offsets) != len(ticks):
            raise ValueError(f"{symbol}: {len(offsets)} tail offsets for {len(ticks)} ticks")
        if offsets and offsets[-1] > MAX_TAIL_OFFSET:
            raise ValueError(f"{symbol}: tail offset {offsets[-1]} above {MAX_TAIL_OFFSET}")
        args.append(_msgpack.encode(offsets))
        args.append(b"\n".join(ticks))
    args[2] = names
    return keys, args
