"""OIDC/JWT bearer tokens, checked against the identity provider's JWKS (PyJWT).

A token is accepted when its signature verifies with a key from the JWKS
(``TICKLAKE_AUTH_JWKS_URL``, the provider's ``jwks_uri``), its algorithm is
one of ``algorithms`` (never ``none``, never HMAC: a public key must not double
as a shared secret), it has not expired (``exp`` is required), and ``iss`` and
``aud`` match when they are configured. Its entitlements are the symbol
patterns in one claim (``ticklake_symbols`` by default): a list, or one string
separated by spaces or commas. A token without that claim is authenticated
and entitled to nothing.

The JWKS is fetched over HTTP(S) and cached by PyJWT (``lifespan_s``); a token
signed with a key id not in the cache makes it fetch again (at most every
``cooldown_s``), which is how a provider's key rotation is picked up. Fetches
are blocking, so :meth:`JwtVerifier.caller` runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, Final

import jwt

from ticklake.query.auth.api_keys import Caller
from ticklake.query.auth.entitlements import BadPattern, Entitlements

SAFE_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class TokenRejected(Exception):
    """The token is not acceptable (HTTP 401); the message says why, never the token."""


class ProviderUnavailable(Exception):
    """The JWKS could not be fetched, so a possibly valid token cannot be checked (503)."""


class JwtVerifier:
    def __init__(
        self,
        jwks_url: str,
        *,
        algorithms: Sequence[str],
        issuer: str | None,
        audience: str | None,
        symbols_claim: str,
        leeway_s: float,
        lifespan_s: float = 300.0,
        cooldown_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        unsafe = set(algorithms) - SAFE_ALGORITHMS
        if unsafe or not algorithms:
            raise ValueError(
                f"JWT algorithms {sorted(unsafe) or '[]'} refused: use asymmetric ones "
                f"({', '.join(sorted(SAFE_ALGORITHMS))})"
            )
        self._jwks = jwt.PyJWKClient(
            jwks_url, cache_keys=True, lifespan=lifespan_s, timeout=timeout_s,
            cooldown_duration=cooldown_s,
        )  # fmt: skip
        self._algorithms = list(algorithms)
        self._issuer = issuer
        self._audience = audience
        self._claim = symbols_claim
        self._leeway_s = leeway_s

    async def caller(self, token: str) -> Caller:
        return await asyncio.to_thread(self._verify, token)

    def _verify(self, token: str) -> Caller:
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as e:
            raise ProviderUnavailable(f"cannot fetch the identity provider's keys: {e}") from e
        except (jwt.PyJWKClientError, jwt.DecodeError) as e:
            raise TokenRejected(f"token refused: {_reason(e)}") from e
        required = ["exp"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway_s,
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as e:
            raise TokenRejected("token expired") from e
        except jwt.InvalidTokenError as e:
            raise TokenRejected(f"token refused: {_reason(e)}") from e
        subject = str(claims.get("sub") or claims.get("client_id") or "unknown")
        try:
            rights = Entitlements.of(_patterns(claims.get(self._claim)))
        except BadPattern as e:
            raise TokenRejected(f"token refused: claim {self._claim}: {e}") from e
        return Caller(key_id=f"jwt:{subject}", name=subject, entitlements=rights)


def _patterns(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p for p in re.split(r"[\s,]+", value) if p]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return list(value)
    raise BadPattern(f"{type(value).__name__} is neither a list of patterns nor a string")


def _reason(error: Exception) -> str:
    # PyJWT's messages name the failed check, never the token's content.
    return str(error) or type(error).__name__
