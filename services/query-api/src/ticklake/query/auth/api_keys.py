"""API keys: the token format and the key file (the one owner of both).

A token is ``tlk_<id>_<secret>``: ``id`` 12 hex digits that name the key (shown
by ``ticklake-query keys list``, safe to log), ``secret`` 43 characters of
URL-safe base64 (256 random bits), shown once when the key is created.

The key file (JSON, ``TICKLAKE_AUTH_KEYS_FILE``) holds, per key, its id, a
name, the SHA-256 of its secret, the symbol patterns it may read, its rate
limit and when it was created and revoked; never the secret. SHA-256 and not
a slow password hash: the secret is 256 random bits, so no guessing attack
exists for a slow hash to slow down, and every request would pay for it.

Writers (the CLI) replace the file atomically under a lock file beside it;
the server re-reads it when it changes (:class:`KeyRing`), so a revoked key is
refused within ``reload_s`` without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from ticklake.query.auth.entitlements import BadPattern, Entitlements, check_pattern

log = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "tlk_"
_TOKEN: Final = re.compile(r"tlk_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})")
FILE_VERSION: Final = 1


class KeyFileError(Exception):
    """The key file is missing, unreadable or malformed; the message names the file."""


class ApiKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: str
    name: str
    sha256: str
    symbols: list[str]
    created: str
    rate_per_s: float | None = None
    burst: int | None = None
    revoked: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


class KeyFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    version: int
    keys: list[ApiKey]


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None."""
    match = _TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def new_token() -> tuple[str, str, str]:
    """``(id, secret, token)`` for a new key."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"{TOKEN_PREFIX}{key_id}_{secret}"


def decode(data: bytes, source: str) -> KeyFile:
    try:
        keyfile = msgspec.json.decode(data, type=KeyFile)
    except msgspec.ValidationError as e:
        raise KeyFileError(f"{source}: {e}") from e
    except msgspec.DecodeError as e:
        raise KeyFileError(f"{source}: not JSON: {e}") from e
    if keyfile.version != FILE_VERSION:
        raise KeyFileError(f"{source}: version {keyfile.version}; this API reads {FILE_VERSION}")
    seen: set[str] = set()
    for key in keyfile.keys:
        if key.id in seen:
            raise KeyFileError(f"{source}: key id {key.id} appears twice")
        seen.add(key.id)
        try:
            Entitlements.of(key.symbols)
        except BadPattern as e:
            raise KeyFileError(f"{source}: key {key.id}: {e}") from e
    return keyfile


def _missing(path: Path) -> KeyFileError:
    return KeyFileError(f"{path}: no such key file; create one with `ticklake-query keys create`")


def read(path: Path) -> KeyFile:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read: {e}") from e
    return decode(data, str(path))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write(path: Path, keyfile: KeyFile) -> None:
    data = msgspec.json.format(msgspec.json.encode(keyfile), indent=2) + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)  # hashes only, but a list of who may read what
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create(
    path: Path,
    name: str,
    symbols: list[str],
    *,
    rate_per_s: float | None = None,
    burst: int | None = None,
) -> tuple[ApiKey, str]:
    """Add a key to the file (made if absent); ``(the key, its token)``."""
    if not name.strip():
        raise ValueError("a key needs a name (who or what uses it)")
    if not symbols:
        raise ValueError("a key needs at least one symbol pattern (use * for all)")
    patterns = [check_pattern(s) for s in symbols]
    if rate_per_s is not None and rate_per_s <= 0:
        raise ValueError(f"rate {rate_per_s} must be above 0 requests a second")
    if burst is not None and burst < 1:
        raise ValueError(f"burst {burst} must be at least 1")
    key_id, secret, token = new_token()
    key = ApiKey(
        id=key_id, name=name.strip(), sha256=secret_digest(secret), symbols=patterns,
        created=_now(), rate_per_s=rate_per_s, burst=burst,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        current = read(path) if path.exists() else KeyFile(FILE_VERSION, [])
        _write(path, KeyFile(FILE_VERSION, [*current.keys, key]))
    return key, token


def revoke(path: Path, key_id: str) -> ApiKey:
    """Mark a key revoked (kept in the file, so its id stays taken and on record)."""
    with _locked(path):
        current = read(path)
        match = [k for k in current.keys if k.id == key_id]
        if not match:
            raise KeyError(f"no key {key_id!r} in {path}")
        revoked = match[0]
        if revoked.revoked is None:
            revoked = msgspec.structs.replace(revoked, revoked=_now())
        keys = [revoked if k.id == key_id else k for k in current.keys]
        _write(path, KeyFile(FILE_VERSION, keys))
    return revoked


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, as the routes see it."""

    key_id: str
    name: str
    entitlements: Entitlements
    rate_per_s: float | None = None
    burst: int | None = None


class KeyRing:
    """The server's view of the key file, re-read when the file changes.

    ``reload_s`` bounds how often the file is looked at (one ``stat``). A file
    that becomes malformed is reported (log, :attr:`last_error`) and the keys
    read last stay in force until it is fixed: refusing every key because of a
    typo would take the API down for all users.
    """

    def __init__(
        self, path: Path, *, reload_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._reload_s = reload_s
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._callers: dict[str, tuple[str, Caller]] = {}
        self.last_error: str | None = None
        self._load(self._stat())  # a missing or malformed file at start is fatal

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise _missing(self.path) from None
        except OSError as e:
            raise KeyFileError(f"{self.path}: {e.strerror}") from e
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self, stamp: tuple[int, int, int]) -> None:
        keyfile = read(self.path)
        self._callers = {
            k.id: (
                k.sha256,
                Caller(k.id, k.name, Entitlements.of(k.symbols), k.rate_per_s, k.burst),
            )
            for k in keyfile.keys
            if k.active
        }
        self._stamp = stamp
        self.last_error = None
        log.info("read %d active API keys from %s", len(self._callers), self.path)

    def refresh(self) -> None:
        now = self._clock()
        if now - self._checked < self._reload_s:
            return
        self._checked = now
        try:
            stamp = self._stat()
            if stamp != self._stamp:
                self._load(stamp)
        except KeyFileError as e:
            if self.last_error != str(e):
                log.error("key file not re-read, the keys read before stay in force: %s", e)
            self.last_error = str(e)

    def caller(self, token: str) -> Caller | None:
        """The caller a bearer token belongs to, or None (unknown, malformed or revoked)."""
        self.refresh()
        parsed = parse_token(token)
        if parsed is None:
            return None
        entry = self._callers.get(parsed[0])
        if entry is None or not hmac.compare_digest(entry[0], secret_digest(parsed[1])):
            return None
        return entry[1]
