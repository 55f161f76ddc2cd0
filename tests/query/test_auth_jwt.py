"""OIDC/JWT bearer tokens on the running API: a JWKS served on loopback, tokens signed
with real RSA keys (PyJWT + cryptography), entitlements from a claim."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from query.conftest import Keys, api_settings
from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi
from ticklake.devstack.ports import free_port

ISSUER = "https://idp.test/realms/desk"
AUDIENCE = "ticklake"


@dataclass
class Provider:
    """A JWKS endpoint on loopback and the key that signs its tokens."""

    url: str
    kid: str
    key: rsa.RSAPrivateKey

    def token(self, *, lifetime_s: float = 300, key: Any = None, kid: str | None = None,
              algorithm: str = "RS256", **claims: Any) -> str:  # fmt: skip
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now,
                "exp": now + int(lifetime_s)} | claims  # fmt: skip
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.key, algorithm=algorithm,
                          headers={"kid": kid or self.kid})  # fmt: skip


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex[:8]
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [public | {"kid": kid, "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Provider(f"http://127.0.0.1:{server.server_address[1]}/certs", kid, key)
    server.shutdown()


def _api(keys: Keys, jwks_url: str, redis_url: str, password: str, lake: Path) -> RunningApi:
    return RunningApi(api_settings(
        redis_url=redis_url, redis_password=password, lake_uri=str(lake),
        auth_enabled=True, auth_keys_file=keys.path, auth_jwks_url=jwks_url,
        auth_jwt_issuer=ISSUER, auth_jwt_audience=AUDIENCE,
    ))  # fmt: skip


@pytest.fixture(scope="module")
def oidc_api(
    provider: Provider, keys: Keys, query_redis_url: str, redis_password: str, lake_root: Path
) -> Iterator[RunningApi]:
    with _api(keys, provider.url, query_redis_url, redis_password, lake_root) as running:
        yield running


@pytest.fixture(scope="module")
def two_symbols(ingest: IngestLike) -> tuple[str, str]:
    ent, den = new_symbol("ENT"), new_symbol("DEN")
    start = time.time_ns() - 120 * NS
    ingest.ingest(make_ticks(ent, 5, start_ns=start, step_ns=NS) +
                  make_ticks(den, 5, start_ns=start, step_ns=NS))  # fmt: skip
    return ent, den


def _get(api: RunningApi, path: str, token: str) -> httpx.Response:
    return httpx.get(api.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.mark.parametrize("claim", [["ENT*"], "ENT* ZZZ", "ENT*,ZZZ"])
def test_a_valid_token_reads_what_its_claim_grants(
    oidc_api: RunningApi, provider: Provider, two_symbols: tuple[str, str], claim: object
) -> None:
    ent, den = two_symbols
    token = provider.token(ticklake_symbols=claim)
    assert _get(oidc_api, f"/latest/{ent}", token).status_code == 200
    denied = _get(oidc_api, f"/latest/{den}", token)
    assert denied.status_code == 403
    assert denied.json()["detail"] == f"key jwt:alice may not read {den}"
    listed = _get(oidc_api, "/symbols", token).json()["symbols"]
    assert ent in listed and den not in listed


def test_a_token_without_the_claim_is_entitled_to_nothing(
    oidc_api: RunningApi, provider: Provider, two_symbols: tuple[str, str]
) -> None:
    token = provider.token()
    assert _get(oidc_api, f"/latest/{two_symbols[0]}", token).status_code == 403
    assert _get(oidc_api, "/symbols", token).json()["symbols"] == []


def test_api_keys_keep_working_beside_tokens(
    oidc_api: RunningApi, keys: Keys, two_symbols: tuple[str, str]
) -> None:
    assert _get(oidc_api, f"/latest/{two_symbols[1]}", keys.all).status_code == 200


def test_forged_expired_and_foreign_tokens_are_401_with_why(
    oidc_api: RunningApi, provider: Provider, two_symbols: tuple[str, str]
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    grant = {"ticklake_symbols": ["*"]}
    cases = {
        "token expired": provider.token(lifetime_s=-120, **grant),  # past the 30 s leeway
        "audience doesn't match": provider.token(aud="someone-else", **grant),
        "Invalid issuer": provider.token(iss="https://evil.test", **grant),
        "Signature verification failed": provider.token(key=other, **grant),
        'Unable to find a signing key that matches: "nope"': provider.token(kid="nope", **grant),
        'missing the "exp" claim': provider.token(exp=None, **grant),
        "token refused": "not.a.jwt",
    }
    # An HMAC token "signed" with the public key (the classic algorithm confusion)
    # and an unsigned one are refused too.
    public_pem = provider.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = jwt.encode({"sub": "x", "exp": int(time.time()) + 60, "ticklake_symbols": ["*"]},
                          None, algorithm="none", headers={"kid": provider.kid})  # fmt: skip

    # PyJWT itself will not sign with a PEM as an HMAC secret, so forge it by hand.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = ".".join([
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": provider.kid}).encode()),
        b64(json.dumps({"sub": "x", "exp": int(time.time()) + 60, "iss": ISSUER,
                        "aud": AUDIENCE, "ticklake_symbols": ["*"]}).encode()),
    ])  # fmt: skip
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{b64(mac)}"
    refused = [*cases.items(), ("The specified alg value is not allowed", unsigned),
               ("The specified alg value is not allowed", confused)]  # fmt: skip
    for why, token in refused:
        r = _get(oidc_api, f"/latest/{two_symbols[0]}", token)
        assert r.status_code == 401, (why, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert why.lower() in r.json()["detail"].lower(), (why, r.json())
        assert token not in r.text


def test_an_unreachable_identity_provider_is_503_not_401(
    keys: Keys, provider: Provider, query_redis_url: str, redis_password: str, lake_root: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/certs"
    with _api(keys, dead, query_redis_url, redis_password, lake_root) as api:
        r = _get(api, "/symbols", provider.token(ticklake_symbols=["*"]))
        assert r.status_code == 503, r.text
        assert "cannot fetch the identity provider's keys" in r.json()["detail"]
        assert r.headers["retry-after"] == "5"
        # API keys do not depend on the provider.
        assert _get(api, "/symbols", keys.all).status_code == 200


def test_unsafe_algorithms_are_refused_at_start(keys: Keys, lake_root: Path) -> None:
    with pytest.raises(ValueError, match=r"JWT algorithms \['HS256'\] refused"):
        RunningApi(api_settings(lake_uri=str(lake_root), auth_enabled=True,
                                auth_jwks_url="http://127.0.0.1:9/certs",
                                auth_jwt_algorithms=["RS256", "HS256"]))  # fmt: skip
