"""The query API's one settings object, read from ``TICKLAKE_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from ticklake.core.settings import HttpFields, LakeFields, RedisFields, settings_config


class QuerySettings(RedisFields, LakeFields, HttpFields):
    """Everything the query API reads from the environment (prefix ``TICKLAKE_``)."""

    model_config = settings_config()

    http_port: int = Field(8000, description="Port the query API listens on.")
    max_rows: int = Field(
        50_000,
        ge=1,
        description="Hard cap on rows one /ticks page returns (a larger limit is a 422).",
    )
    default_rows: int = Field(
        1_000, ge=1, description="Rows per /ticks page when no limit is given."
    )
    max_tick_span_s: float = Field(
        7 * 86_400.0,
        gt=0,
        description="Hard cap on end - start for /ticks, seconds (bounds the lake scan).",
    )
    default_tick_span_s: float = Field(
        86_400.0, gt=0, description="/ticks window when start is omitted: end - this, seconds."
    )
    max_bars: int = Field(
        100_000,
        ge=1,
        description="Hard cap on bars one /bars request may cover ((end - start) / interval).",
    )
    asof_lookback_days: int = Field(
        7,
        ge=0,
        description=(
            "UTC days before ts an as-of lookup searches; also how many newest days the "
            "lake's symbol list covers when Redis is down (bounds the scans)."
        ),
    )
    tail_read_max: int = Field(
        20_000,
        ge=0,
        description="Most Redis tail entries read per request (the tail is capped near 10,000).",
    )
    tail_clock_skew_s: float = Field(
        300.0,
        ge=0,
        description=(
            "/ticks skips Redis tail entries added more than this many seconds before the "
            "window's start (their ticks are older); a tick dated further in the future than "
            "this shows in /ticks only once it is in the lake."
        ),
    )
    redis_timeout_s: float = Field(
        0.5,
        gt=0,
        description="Redis socket timeout, seconds; past it /latest falls back to the lake.",
    )
    latest_mirror_ttl_s: float = Field(
        2.0,
        ge=0,
        description=(
            "Seconds a latest tick copied from the Redis channel is served from memory without "
            "a channel update; 0 turns the in-process copy off (every /latest asks Redis)."
        ),
    )
    lake_query_concurrency: int = Field(
        4, ge=1, description="Lake (DuckDB) queries run at once; more wait their turn."
    )
    duckdb_threads: int = Field(0, ge=0, description="DuckDB worker threads; 0 = one per core.")
    duckdb_memory_limit: str = Field("1GB", description="DuckDB memory limit (e.g. 512MB, 2GB).")
    stream_heartbeat_s: float = Field(
        15.0,
        gt=0,
        description="Seconds between SSE heartbeat comments (keeps idle proxies from closing).",
    )
    stream_queue_max: int = Field(
        1_000,
        ge=1,
        description="Messages buffered per stream client; a slower client loses the oldest.",
    )
    auth_enabled: bool = Field(
        True,
        description=(
            "Require an API key (Authorization: Bearer) on every data route; /healthz, "
            "/readyz, /metrics and the live page's files stay open. Off only for a local demo."
        ),
    )
    auth_keys_file: Path | None = Field(
        None,
        description=(
            "The API key file (`ticklake-query keys create` writes it); re-read when it "
            "changes. Required while auth is enabled, unless auth_jwks_url is set."
        ),
    )
    auth_jwks_url: str | None = Field(
        None,
        description=(
            "Also accept OIDC/JWT access tokens signed by a key of this JWKS (the identity "
            "provider's jwks_uri); their symbol patterns come from auth_jwt_symbols_claim."
        ),
    )
    auth_jwt_issuer: str | None = Field(
        None, description="Required iss of JWT tokens (unset: not checked)."
    )
    auth_jwt_audience: str | None = Field(
        None, description="Required aud of JWT tokens (unset: not checked)."
    )
    auth_jwt_algorithms: list[str] = Field(
        ["RS256", "ES256"],
        description="Accepted JWT signature algorithms (asymmetric only; JSON list).",
    )
    auth_jwt_symbols_claim: str = Field(
        "ticklake_symbols",
        description="JWT claim holding the symbol patterns (a list, or a space/comma string).",
    )
    auth_jwt_leeway_s: float = Field(
        30.0, ge=0, description="Clock skew allowed on a JWT's exp/nbf/iat, seconds."
    )
    auth_rate_per_s: float = Field(
        50.0, gt=0, description="Requests a second per key, unless the key sets its own."
    )
    auth_burst: int = Field(
        100, ge=1, description="Requests a key may send at once, unless the key sets its own."
    )
    auth_reload_s: float = Field(
        1.0, gt=0, description="Most seconds before a changed key file (a revoked key) applies."
    )
    shutdown_grace_s: float = Field(
        10.0,
        gt=0,
        description=(
            "Seconds uvicorn waits for open requests on SIGTERM; keep below the pod's "
            "terminationGracePeriodSeconds (30 by default)."
        ),
    )

    @model_validator(mode="after")
    def _auth_needs_keys(self) -> QuerySettings:
        if self.auth_enabled and self.auth_keys_file is None and self.auth_jwks_url is None:
            raise ValueError(
                "neither TICKLAKE_AUTH_KEYS_FILE nor TICKLAKE_AUTH_JWKS_URL is set while "
                "authentication is on: create a key file with `ticklake-query keys create "
                "--file PATH ...`, give an identity provider's JWKS URL, or set "
                "TICKLAKE_AUTH_ENABLED=false for a local demo"
            )
        return self
