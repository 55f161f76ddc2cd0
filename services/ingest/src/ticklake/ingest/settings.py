"""The ingest service's one settings object, read from ``TICKLAKE_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ticklake.core import hot_cache, topics
from ticklake.core.settings import (
    HttpFields,
    KafkaFields,
    LakeFields,
    RedisFields,
    settings_config,
)
from ticklake.ingest.ordering_settings import OrderingFields


class IngestSettings(KafkaFields, RedisFields, LakeFields, HttpFields, OrderingFields):
    """Everything ingest reads from the environment (prefix ``TICKLAKE_``)."""

    model_config = settings_config()

    http_port: int = Field(8002, description="Port of /healthz, /readyz, /metrics.")
    consumer_group: str = Field(topics.CONSUMER_GROUP, description="Kafka consumer group id.")
    client_id: str = Field("ticklake-ingest", description="Kafka client id (shows in logs).")

    fetch_max_wait_ms: int = Field(
        5,
        description="Longest the broker holds a fetch for fetch_min_bytes (ms). Small, so a "
        "quiet feed is still seen within milliseconds; a busy one fills fetches anyway.",
    )
    fetch_min_bytes: int = Field(1, description="Bytes a fetch waits for (see fetch_max_wait_ms).")
    max_partition_fetch_bytes: int = Field(
        512 * 1024, description="Largest chunk fetched per partition and request (bytes)."
    )
    max_batch_records: int = Field(
        10_000, description="Most records taken from the client per processing step."
    )
    poll_timeout_ms: int = Field(
        100, description="Longest one getmany() waits when nothing is buffered (ms)."
    )
    group_instance_id: str | None = Field(
        None,
        description="Static group membership (KIP-345): a name stable across restarts of "
        "this replica (the chart passes the pod name). A restarted replica gets its "
        "partitions back at once, without a rebalance; a replica that is gone for good "
        "keeps its partitions unprocessed until session_timeout_ms. Unset: dynamic member.",
    )
    session_timeout_ms: int = Field(
        10_000,
        description="Kafka group session timeout (ms): a silent member loses its partitions "
        "after this long. Brokers refuse values below group.min.session.timeout.ms (6000).",
    )
    heartbeat_interval_ms: int = Field(2_000, description="Kafka group heartbeat (ms).")
    max_poll_interval_ms: int = Field(
        300_000, description="Longest gap between polls before the group evicts us (ms)."
    )

    fetch_max_bytes: int = Field(
        16 * 1024 * 1024,
        description="Most bytes one fetch brings from a broker; bounds the client's buffer.",
    )
    lake_roll_rows: int = Field(
        100_000, description="Roll a partition's lake file at this many pending rows."
    )
    lake_roll_bytes: int = Field(
        64 * 1024 * 1024, description="... or at this many pending in-memory bytes."
    )
    lake_roll_seconds: float = Field(
        30.0, description="... or when the oldest pending row waited this long (s)."
    )
    lake_roll_idle_seconds: float = Field(
        1.0,
        gt=0,
        description="... or when no record has arrived for this long (s) and at least "
        "lake_roll_idle_min_rows rows wait: the end of a burst or of a backlog drain is "
        "durable within about a second instead of at the age limit.",
    )
    lake_roll_idle_min_rows: int = Field(
        10_000,
        ge=1,
        description="Fewest pending rows a partition rolls with when idle; a trickling "
        "feed below it rolls by age (lake_roll_seconds), never a file per tick.",
    )
    lake_buffer_max_bytes: int = Field(
        64 * 1024 * 1024,
        description="Memory cap of all partitions' pending rows together: past it the "
        "fullest partition rolls early (keeps RSS bounded with many partitions).",
    )
    lake_row_group_rows: int = Field(
        256_000, description="Parquet row group size (rows); big groups scan fast."
    )
    lake_zstd_level: int = Field(3, description="zstd compression level of lake files.")
    lake_table: Literal["delta", "none"] = Field(
        "delta",
        description="delta: every flush's files are added to the datasets' Delta tables "
        "(one commit per dataset, its Kafka offset as the commit's transaction version; "
        "docs/lake.md); none: the Parquet files only, as before tables.",
    )
    lake_max_pending_rows: int = Field(
        2_000_000,
        description="Pause a partition when this many rows wait for a failing lake write.",
    )
    lake_retry_max_seconds: float = Field(
        10.0, description="Longest backoff between retries of a failed lake write (s)."
    )

    stall_fatal_after_seconds: float = Field(
        120.0,
        gt=0,
        description="A partition whose write path (dead letters, lake write, commit) has "
        "failed without a break for this long makes the process exit non-zero, so it is "
        "restarted and resumes from the last durable flush (s). Until then each step is "
        "retried with backoff and the partition shows in /readyz and "
        "ticklake_ingest_partition_stalled.",
    )
    dead_letter_max_pending: int = Field(
        10_000,
        ge=1,
        description="Pause a partition when this many of its dead letters wait for the "
        "dead-letter topic (bounds memory during a dead-letter outage).",
    )

    ema_fast_span: int = Field(12, ge=1, description="Span (ticks) of the fast price EMA.")
    ema_slow_span: int = Field(48, ge=1, description="Span (ticks) of the slow price EMA.")
    vol_span: int = Field(
        100, ge=1, description="Span (ticks) of the EWMA of squared log returns (volatility)."
    )
    dedup_window: int = Field(
        4096,
        ge=1,
        description="How many sequence numbers below the highest seen are remembered per "
        "symbol to recognise a re-sent tick.",
    )

    redis_tail_max_len: int = Field(
        hot_cache.TAIL_MAX_LEN, description="Approximate cap of a symbol's tail stream."
    )
    redis_timeout_seconds: float = Field(
        2.0, description="Socket timeout of Redis calls (s); Redis is never waited on longer."
    )
    redis_retry_max_seconds: float = Field(
        5.0, description="Longest backoff between reconnect attempts to Redis (s)."
    )
    redis_pending_tail_max: int = Field(
        200,
        description="Ticks per symbol kept for the tail while Redis is behind or down; "
        "older ones are skipped (the lake has them all).",
    )
    redis_pending_symbols_max: int = Field(
        100_000, description="Most symbols kept for catch-up while Redis is down."
    )

    shutdown_grace_seconds: float = Field(
        25.0,
        description="SIGTERM to exit (s): flush, commit, leave the group. Keep it below the "
        "pod's terminationGracePeriodSeconds (30 in the chart).",
    )
    kafka_retry_max_seconds: float = Field(
        10.0, description="Longest backoff between attempts to reach Kafka (s)."
    )
    fault_injection_file: Path | None = Field(
        None,
        description="TEST ONLY (the fault suite, docs/reliability.md): while this file "
        "exists and names lake_write or flush_task, flushes raise there. Unset: inert.",
    )
    metrics_lag_interval_seconds: float = Field(
        5.0, description="How often committed lag per partition is refreshed (s)."
    )

    @model_validator(mode="after")
    def _spans_ordered(self) -> IngestSettings:
        if self.ema_fast_span > self.ema_slow_span:
            raise ValueError(
                f"ema_fast_span ({self.ema_fast_span}) must not exceed "
                f"ema_slow_span ({self.ema_slow_span})"
            )
        return self


class LakeMaintenanceSettings(LakeFields):
    """``ticklake-lake``: compaction, retention and vacuum of the lake's tables."""

    lake_compact_target_rows: int = Field(
        1_000_000,
        ge=1_000,
        description="Rows per compacted file (at least; a file holds whole symbols, so "
        "one may hold more, up to twice this before it is split).",
    )
    lake_compact_settle_days: int = Field(
        1,
        ge=1,
        description="A day (UTC) is compacted once this many whole days have passed since "
        "it ended; a late tick that still comes lands in its own file beside the rewrite.",
    )
    ticks_retention_days: int | None = Field(
        None,
        ge=1,
        description="Remove days of ticks older than this from the table (then vacuum "
        "deletes their files); unset: keep them.",
    )
    bars_retention_days: int | None = Field(
        None,
        ge=1,
        description="The same for bars_1s and bars_1m (bars are kept longer than ticks).",
    )
    lake_log_retention_days: int = Field(
        30,
        ge=1,
        description="Snapshot expiry: vacuum sets each table's log retention to this and "
        "removes older log entries; versions older than that can no longer be read (time "
        "travel, /asof?version=).",
    )
    lake_vacuum_retain_hours: int = Field(
        168,
        ge=0,
        description="Files the table removed (by compaction or retention) are deleted "
        "this long after: queries under way and time travel within it still read them.",
    )
