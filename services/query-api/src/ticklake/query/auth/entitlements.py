"""Which symbols a caller may read: a list of symbol patterns (pure).

A pattern is a symbol (``AAPL``) or a symbol with shell-style wildcards:
``*`` any run of characters, ``?`` one character (``EUR/*``, ``ES?F``, ``*``).
Matching is case-sensitive on upper-cased symbols (the API upper-cases every
symbol it is given before asking). Character classes (``[...]``) are refused:
a pattern must read as what it grants.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

_PATTERN_SHAPE: Final = re.compile(r"[A-Z0-9.\-/_^=*?]{1,20}")


class NotEntitled(Exception):
    """The caller asked for symbols its key does not grant (HTTP 403, naming them)."""

    def __init__(self, key_id: str, symbols: Sequence[str]) -> None:
        super().__init__(f"key {key_id} may not read {', '.join(symbols)}")
        self.key_id = key_id
        self.symbols = list(symbols)


class BadPattern(ValueError):
    """A symbol pattern that grants nothing sensible (a typo is not a grant)."""


def check_pattern(text: str) -> str:
    """``text`` upper-cased, or :class:`BadPattern` naming what is wrong."""
    pattern = text.strip().upper()
    if not _PATTERN_SHAPE.fullmatch(pattern):
        raise BadPattern(
            f"{text!r} is not a symbol pattern: 1-20 of A-Z 0-9 . - / _ ^ = "
            "and the wildcards * and ?"
        )
    return pattern


@dataclass(frozen=True)
class Entitlements:
    """The symbol patterns one key or token grants; :meth:`allows` is the check."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checked = tuple(check_pattern(p) for p in self.patterns)
        object.__setattr__(self, "patterns", checked)
        # One alternation of fnmatch's translations: one regex call per symbol.
        joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in checked) or r"(?!)"
        object.__setattr__(self, "_regex", re.compile(joined))

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Entitlements:
        return cls(tuple(patterns))

    @property
    def everything(self) -> bool:
        return "*" in self.patterns

    def allows(self, symbol: str) -> bool:
        return self._regex.match(symbol) is not None

    def denied(self, symbols: Sequence[str]) -> list[str]:
        """The symbols of ``symbols`` not granted, in their order."""
        return [s for s in symbols if not self.allows(s)]


EVERYTHING: Final = Entitlements(("*",))
"""What a caller may read when authentication is off."""
