"""The producer's one settings object, read from ``TICKLAKE_*`` environment variables.

The command line builds the same object and overrides fields from its flags,
so the service mode (``ticklake-producer serve``) and the CLI share every
default. Units are in the field names (``_ms``, ``_bytes``, ``_s``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from ticklake.core.settings import HttpFields, KafkaFields, settings_config
from ticklake.core.tick import SYMBOL_PATTERN

Compression = Literal["zstd", "lz4", "gzip", "snappy", "none"]
OnBadRow = Literal["skip", "fail"]
Mode = Literal["simulate", "replay"]


class ProducerSettings(KafkaFields, HttpFields, BaseSettings):
    """Everything the producer needs. Env: ``TICKLAKE_<FIELD>`` (upper case)."""

    model_config = settings_config()

    http_port: int = Field(8001, description="Port of /healthz and /metrics in service mode.")

    # Topic creation.
    topic_partitions: int = Field(
        6, ge=1, description="Partitions of the ticks topic when the producer creates it."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics the producer creates."
    )
    dead_letter_partitions: int = Field(
        1, ge=1, description="Partitions of the dead-letter topic when the producer creates it."
    )

    # Kafka client tuning.
    compression: Compression = Field(
        "zstd",
        description=(
            "Batch compression. zstd (level 3) costs ~0.3 us/tick in this client; lz4 runs at "
            "level 9 in aiokafka and costs ~2.5 us/tick, a quarter of the 100k ticks/s budget."
        ),
    )
    max_batch_bytes: int = Field(
        262_144,
        ge=1024,
        description="Uncompressed bytes per partition batch (~1,200 ticks at 220 B each).",
    )
    request_timeout_ms: int = Field(
        30_000,
        ge=1000,
        description=(
            "Kafka request timeout, and how long a batch may wait for room before its ticks are "
            "counted as failed. The idempotent producer retries a sent batch until it succeeds."
        ),
    )
    connect_retry_max_s: float = Field(
        120.0,
        ge=0,
        description="How long start() keeps retrying an unreachable broker (backoff up to 5 s).",
    )

    # What to publish in service mode.
    feed_mode: Mode = Field(
        "simulate", description="Service mode: simulate a feed or replay a file."
    )
    replay_file: str | None = Field(None, description="CSV or Parquet file for feed_mode=replay.")
    replay_on_bad_row: OnBadRow = Field(
        "skip",
        description="Replay rows that are not valid ticks: skip (logged with file:line) or fail.",
    )
    replay_speed: float = Field(
        1.0, ge=0, description="Replay pace: 1 = original, 10 = ten times faster, 0 = unpaced."
    )
    feed_symbols: str = Field(
        "AAPL,MSFT,AMZN,GOOGL,META,NVDA,TSLA,JPM,V,XOM",
        description="Comma-separated symbols to simulate.",
    )
    feed_rate: float = Field(
        1000.0,
        ge=0,
        description="Simulated ticks per second, all symbols (0: as fast as possible).",
    )
    feed_duration_s: float | None = Field(
        None, gt=0, description="Stop simulating after this many seconds (None: run until SIGTERM)."
    )
    feed_count: int | None = Field(
        None, ge=0, description="Stop after this many ticks (None: no cap)."
    )
    feed_seed: int = Field(
        0, description="Random seed: the same seed and rate replay the same feed."
    )
    sim_drift: float = Field(0.05, description="Annual drift of every simulated symbol (fraction).")
    sim_volatility: float | None = Field(
        None, ge=0, description="Annual volatility of every symbol (None: per-ticker defaults)."
    )
    sim_correlation: float = Field(0.3, description="Pairwise correlation of all symbols' returns.")
    sim_spread_bps: float = Field(2.0, ge=0, description="Mean quoted spread in basis points.")
    feed_burst_every_s: float | None = Field(
        None, gt=0, description="Burst mode: a burst starts every this many seconds (None: off)."
    )
    feed_burst_duration_s: float = Field(1.0, gt=0, description="Length of each burst, seconds.")
    feed_burst_multiplier: float = Field(5.0, gt=0, description="Rate multiplier during a burst.")
    feed_slice_ms: float = Field(
        10.0,
        gt=0,
        description=(
            "Pacing granularity: ticks are generated and sent in slices of this much feed time."
        ),
    )
    progress_interval_s: float = Field(
        1.0, gt=0, description="Seconds between progress lines on stderr (CLI) and log lines."
    )
    shutdown_timeout_s: float = Field(
        20.0,
        gt=0,
        description=(
            "SIGTERM: time allowed to flush before exiting; below the chart's 30 s "
            "terminationGracePeriodSeconds."
        ),
    )

    @model_validator(mode="after")
    def _check_burst(self) -> ProducerSettings:
        if (
            self.feed_burst_every_s is not None
            and self.feed_burst_duration_s >= self.feed_burst_every_s
        ):
            raise ValueError(
                f"feed_burst_duration_s ({self.feed_burst_duration_s}) must be shorter than "
                f"feed_burst_every_s ({self.feed_burst_every_s})"
            )
        self.symbol_list()  # raises for a bad ticker, before anything connects
        if self.feed_mode == "replay" and not self.replay_file:
            raise ValueError("feed_mode=replay needs replay_file (TICKLAKE_REPLAY_FILE)")
        return self

    def symbol_list(self) -> list[str]:
        """The configured symbols, stripped and upper-cased, in order, without duplicates."""
        seen: dict[str, None] = {}
        for raw in self.feed_symbols.split(","):
            s = raw.strip().upper()
            if not s:
                continue
            if SYMBOL_PATTERN.fullmatch(s) is None:
                raise ValueError(f"symbol {raw!r} is not a valid ticker (see ticklake.core.tick)")
            seen.setdefault(s, None)
        if not seen:
            raise ValueError("no symbols configured")
        return list(seen)

    def kafka_compression(self) -> str | None:
        """The compression name aiokafka expects (``None`` for no compression)."""
        return None if self.compression == "none" else self.compression
