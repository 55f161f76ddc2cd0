"""The operator's own settings, read from ``TICKLAKE_OPERATOR_*`` variables.

Everything about *what* to scale lives in the IngestScaler objects; these are
only the process-wide knobs (timing, ports, what to watch).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ticklake.core.settings import KafkaSecurityFields

ENV_PREFIX = "TICKLAKE_OPERATOR_"


class OperatorSettings(KafkaSecurityFields):
    """Also how the lag reader logs in to Kafka (``TICKLAKE_OPERATOR_KAFKA_SECURITY_PROTOCOL``
    ...): one identity for every IngestScaler it watches, allowed to describe only."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    reconcile_interval_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between two reconciles of one IngestScaler. Lag builds in "
        "seconds, and one reconcile costs two Kafka round trips, so 30 s is cheap and "
        "well inside a 300 s scale-down window.",
    )
    kafka_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds one Kafka read (metadata, offsets) may take before the "
        "reconcile is retried as a temporary error. Below the reconcile interval.",
    )
    retry_delay_s: float = Field(
        15.0, gt=0, description="Seconds before retrying after a Kafka or API failure."
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch (JSON list); empty = the whole cluster.",
    )
    scaler_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Reconcile only IngestScalers with all these labels (JSON object, "
        'e.g. {"ticklake.dev/operator": "ns.release"}); empty = every IngestScaler. '
        "Two operators that see the same namespace each need their own, or both "
        "scale the same Deployment.",
    )
    watch_kafka_topics: bool = Field(
        True,
        description="Watch Strimzi KafkaTopic objects so a partition increase there "
        "scales at once. Off where the Strimzi CRDs are not installed.",
    )
    kafka_topic_version: str = Field(
        "v1beta2", description="API version of Strimzi's KafkaTopic to watch."
    )
    metrics_host: str = Field("0.0.0.0", description="Bind address of /metrics.")
    metrics_port: int = Field(9808, ge=0, le=65535, description="0 = no metrics server.")
    liveness_host: str = Field("0.0.0.0", description="Bind address of /healthz.")
    liveness_port: int = Field(8080, ge=0, le=65535, description="0 = no liveness probe.")
    kubeconfig: str | None = Field(
        None,
        description="Path of a kubeconfig; unset = $KUBECONFIG, then the in-cluster "
        "service account.",
    )
