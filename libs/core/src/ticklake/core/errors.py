"""Typed errors for the tick contract.

Every payload that cannot become a :class:`~ticklake.core.tick.Tick` raises
:class:`TickDecodeError` with a machine-readable :class:`DecodeReason`; ingest
puts ``reason.value`` into the dead-letter header, so the values are part of
the wire contract and must never be renamed.
"""

from __future__ import annotations

import enum


class DecodeReason(enum.StrEnum):
    """Why a payload was rejected. Values are stable identifiers (wire contract)."""

    EMPTY_PAYLOAD = "empty_payload"
    NOT_UTF8 = "not_utf8"
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_SYMBOL = "bad_symbol"
    BAD_EXCHANGE = "bad_exchange"
    NON_FINITE_NUMBER = "non_finite_number"
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_SIZE = "negative_size"
    NON_POSITIVE_QUOTE = "non_positive_quote"
    NEGATIVE_QUOTE_SIZE = "negative_quote_size"
    CROSSED_BOOK = "crossed_book"
    NEGATIVE_SEQUENCE = "negative_sequence"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    AMBIGUOUS_TIMESTAMP = "ambiguous_timestamp"
    """An epoch number whose unit (s, ms, µs, ns) cannot be told from its magnitude."""
    CONFLICTING_FIELDS = "conflicting_fields"
    """Two names of one field (e.g. ``ts`` and ``timestamp``) with different values."""


class TickDecodeError(ValueError):
    """A payload is not a valid tick. ``reason`` says why, ``detail`` says where."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
