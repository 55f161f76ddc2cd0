"""The IngestScaler custom resource: names and the spec as a typed model.

The CRD (``charts/ticklake/crds/ingestscalers.ticklake.dev.yaml``) already
refuses most bad specs; this model is the second line, for objects stored
before a schema change and for rules that are easier to state in Python.
A spec it rejects makes the handler raise ``kopf.PermanentError``: retrying
cannot fix it, only an edit can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ticklake.core import topics
from ticklake.operator import decision

GROUP: Final = "ticklake.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "ingestscalers"
KIND: Final = "IngestScaler"

STRIMZI_GROUP: Final = "kafka.strimzi.io"
KAFKA_TOPICS: Final = "kafkatopics"


class InvalidSpec(ValueError):
    """The spec cannot be acted on; fix the object."""


class _Camel(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        alias_generator=lambda s: s.split("_")[0] + "".join(w.title() for w in s.split("_")[1:]),
    )


class TargetRef(_Camel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment", "StatefulSet"]
    name: str = Field(min_length=1)

    @property
    def plural(self) -> str:
        return {"Deployment": "deployments", "StatefulSet": "statefulsets"}[self.kind]


class TopicRef(_Camel):
    name: str = Field(min_length=1)


class KafkaRef(_Camel):
    bootstrap_servers: str = Field(min_length=1)
    topic: str = topics.TICKS_TOPIC
    consumer_group: str = topics.CONSUMER_GROUP
    topic_ref: TopicRef | None = None


class IngestScalerSpec(_Camel):
    target_ref: TargetRef
    kafka: KafkaRef
    mode: decision.Mode = decision.Mode.PARTITIONS
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(100, ge=1)
    partitions_per_replica: int = Field(1, ge=1)
    lag_threshold: int = Field(1000, ge=1)
    scale_down_stabilization_seconds: int = Field(300, ge=0)
    even_distribution: bool = False
    allow_idle_consumers: bool = False
    suspend: bool = False

    @model_validator(mode="after")
    def _bounds_ordered(self) -> IngestScalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) exceeds maxReplicas ({self.max_replicas})"
            )
        return self

    def policy(self) -> decision.Policy:
        return decision.Policy(
            mode=self.mode,
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            partitions_per_replica=self.partitions_per_replica,
            lag_threshold=self.lag_threshold,
            scale_down_stabilization_s=float(self.scale_down_stabilization_seconds),
            even_distribution=self.even_distribution,
            allow_idle_consumers=self.allow_idle_consumers,
        )


def parse(spec: Mapping[str, Any]) -> IngestScalerSpec:
    """The typed spec, or :class:`InvalidSpec` with every problem listed."""
    try:
        return IngestScalerSpec.model_validate(dict(spec))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in e.errors()
        )
        raise InvalidSpec(problems) from e
