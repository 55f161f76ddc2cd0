"""API keys, entitlements and rate limits as pure logic (a fake clock, temporary key files)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake.core.tick import SYMBOL_PATTERN
from ticklake.query.auth import api_keys
from ticklake.query.auth.entitlements import BadPattern, Entitlements, check_pattern
from ticklake.query.auth.rate_limit import TokenBuckets

# ------------------------------------------------------------------ entitlements


def test_patterns_grant_names_and_wildcards() -> None:
    rights = Entitlements.of(["AAPL", "eur/*", "ES?F"])
    assert rights.patterns == ("AAPL", "EUR/*", "ES?F")
    assert [s for s in ["AAPL", "AAPLX", "EUR/USD", "EUR/", "ESZF", "ESZZF", "MSFT"]
            if rights.allows(s)] == ["AAPL", "EUR/USD", "EUR/", "ESZF"]  # fmt: skip
    assert rights.denied(["MSFT", "AAPL", "GBP/USD"]) == ["MSFT", "GBP/USD"]
    assert not rights.everything
    assert Entitlements.of(["*"]).everything


def test_no_pattern_grants_nothing() -> None:
    assert not Entitlements.of([]).allows("AAPL")


@pytest.mark.parametrize("bad", ["", "AAPL MSFT", "[AB]*", "A" * 21, "AAPL;", "é"])
def test_malformed_patterns_are_refused_by_name(bad: str) -> None:
    with pytest.raises(BadPattern, match="is not a symbol pattern"):
        check_pattern(bad)


@given(
    patterns=st.lists(st.from_regex(r"[A-C]{1,3}\*?", fullmatch=True), max_size=4),
    symbol=st.from_regex(SYMBOL_PATTERN, fullmatch=True),
)
def test_allows_is_the_union_of_the_patterns(patterns: list[str], symbol: str) -> None:
    rights = Entitlements.of(patterns)
    expected = any(symbol.startswith(p[:-1]) if p.endswith("*") else symbol == p for p in patterns)
    assert rights.allows(symbol) == expected


# ------------------------------------------------------------------ rate limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(clock)
    assert [buckets.take("k", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", 2.0, 3) == pytest.approx(0.5)  # one token every 0.5 s
    clock.now += 0.5
    assert buckets.take("k", 2.0, 3) == 0.0
    assert buckets.take("other", 2.0, 3) == 0.0  # each key its own bucket
    clock.now += 3600  # refills up to the burst, not beyond
    assert [buckets.take("k", 2.0, 3) for _ in range(4)][-1] > 0


# ------------------------------------------------------------------ the key file


def test_create_stores_a_hash_never_the_token(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key, token = api_keys.create(path, "desk a", ["aapl", "EUR/*"], rate_per_s=5, burst=10)
    assert token.startswith("tlk_" + key.id + "_")
    parsed = api_keys.parse_token(token)
    assert parsed is not None and parsed[0] == key.id
    text = path.read_text()
    assert parsed[1] not in text and token not in text
    assert key.sha256 == api_keys.secret_digest(parsed[1]) and key.sha256 in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (read,) = api_keys.read(path).keys
    assert (read.name, read.symbols, read.rate_per_s, read.burst) == (
        "desk a", ["AAPL", "EUR/*"], 5, 10,
    )  # fmt: skip


def test_create_refuses_what_would_grant_nothing_or_everything_by_mistake(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with pytest.raises(ValueError, match="at least one symbol pattern"):
        api_keys.create(path, "x", [])
    with pytest.raises(BadPattern):
        api_keys.create(path, "x", ["AAPL MSFT"])
    with pytest.raises(ValueError, match="needs a name"):
        api_keys.create(path, " ", ["AAPL"])
    with pytest.raises(ValueError, match="rate"):
        api_keys.create(path, "x", ["AAPL"], rate_per_s=0)
    assert not path.exists()  # nothing written for a refused key


def test_revoke_keeps_the_key_on_record(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    kept, _ = api_keys.create(path, "kept", ["*"])
    gone, _ = api_keys.create(path, "gone", ["*"])
    revoked = api_keys.revoke(path, gone.id)
    assert revoked.revoked is not None
    states = {k.id: k.active for k in api_keys.read(path).keys}
    assert states == {kept.id: True, gone.id: False}
    with pytest.raises(KeyError, match="no key 'nope'"):
        api_keys.revoke(path, "nope")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not JSON"),
        ('{"version": 2, "keys": []}', "version 2"),
        ('{"version": 1, "keys": [{"id": "a"}]}', "missing required field"),
        ('{"version": 1, "keys": [], "extra": 1}', "unknown field"),
        (json.dumps({"version": 1, "keys": [
            {"id": "a", "name": "n", "sha256": "x", "symbols": ["A B"], "created": "t"}]}),
         "key a: 'A B' is not a symbol pattern"),
        (json.dumps({"version": 1, "keys": [
            {"id": "a", "name": "n", "sha256": "x", "symbols": ["A"], "created": "t"}] * 2}),
         "key id a appears twice"),
    ],
)  # fmt: skip
def test_a_malformed_key_file_is_named_with_its_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(api_keys.KeyFileError, match=str(path)) as caught:
        api_keys.read(path)
    assert problem in str(caught.value)


def test_the_key_ring_checks_tokens_and_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key, token = api_keys.create(path, "a", ["AAPL"])
    clock = FakeClock()
    ring = api_keys.KeyRing(path, reload_s=1.0, clock=clock)
    caller = ring.caller(token)
    assert caller is not None and caller.key_id == key.id
    assert caller.entitlements.allows("AAPL") and not caller.entitlements.allows("MSFT")
    # a token with the right id and a wrong secret, a malformed one, an unknown one
    assert ring.caller(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert ring.caller("Bearer " + token) is None
    assert ring.caller(api_keys.new_token()[2]) is None

    api_keys.revoke(path, key.id)
    assert ring.caller(token) is not None  # not re-read before reload_s
    clock.now += 1.0
    assert ring.caller(token) is None  # revoked: refused without a restart


def test_a_broken_key_file_keeps_the_keys_read_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    _, token = api_keys.create(path, "a", ["*"])
    clock = FakeClock()
    ring = api_keys.KeyRing(path, clock=clock)
    path.write_text("{broken")
    clock.now += 5
    assert ring.caller(token) is not None
    assert ring.last_error is not None and "not JSON" in ring.last_error
    assert "keys read before stay in force" in caplog.text
    assert token not in caplog.text


def test_a_missing_key_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(api_keys.KeyFileError, match="no such key file"):
        api_keys.KeyRing(tmp_path / "absent.json")
