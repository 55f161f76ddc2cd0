"""Settings fields every service shares, as pydantic-settings mixins.

Each service has exactly one settings class that inherits the pieces it needs
and is read from the environment with the common prefix ``TICKLAKE_``
(``TICKLAKE_KAFKA_BOOTSTRAP_SERVERS``, ``TICKLAKE_REDIS_URL`` ...). Secrets
are :class:`~pydantic.SecretStr`, so printing settings masks them. The table
of every variable is in ``docs/settings.md``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticklake.core import topics

ENV_PREFIX: Final = "TICKLAKE_"


def settings_config() -> SettingsConfigDict:
    """The model config every service's settings class uses."""
    return SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)


class KafkaSecurityFields(BaseSettings):
    """How a service authenticates to Kafka and encrypts the connection (docs/security.md);
    the operator has these without the rest of :class:`KafkaFields`."""

    model_config = settings_config()

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How clients talk to Kafka (SASL_SSL with SCRAM: docs/security.md).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user (SASL_* protocols).")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (SASL_* protocols). Masked when printed."
    )
    kafka_tls_ca_file: Path | None = Field(
        None, description="CA that signed the brokers' certificates (SSL protocols)."
    )
    kafka_tls_cert_file: Path | None = Field(
        None, description="Client certificate, for brokers that require one (mutual TLS)."
    )
    kafka_tls_key_file: Path | None = Field(None, description="The client certificate's key.")

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> KafkaSecurityFields:
        protocol = self.kafka_security_protocol
        # The variables as this service spells them (the operator's have its own prefix).
        var = f"{self.model_config.get('env_prefix', ENV_PREFIX)}KAFKA_"
        if protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"{var}SECURITY_PROTOCOL={protocol} needs {var}SASL_USERNAME and {var}SASL_PASSWORD"
            )
        tls_files = (self.kafka_tls_ca_file, self.kafka_tls_cert_file, self.kafka_tls_key_file)
        if any(tls_files) and not protocol.endswith("SSL"):
            raise ValueError(
                f"Kafka TLS files are set but {var}SECURITY_PROTOCOL is {protocol}: "
                "use SSL or SASL_SSL"
            )
        if (self.kafka_tls_cert_file is None) != (self.kafka_tls_key_file is None):
            raise ValueError(f"{var}TLS_CERT_FILE and {var}TLS_KEY_FILE go together")
        return self

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments every aiokafka client of a service gets: the protocol and,
        as configured, SASL credentials and a TLS context that verifies the brokers."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            assert self.kafka_sasl_password is not None  # checked above
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
            }
        if self.kafka_security_protocol.endswith("SSL"):
            context = ssl.create_default_context(
                cafile=str(self.kafka_tls_ca_file) if self.kafka_tls_ca_file else None
            )
            if self.kafka_tls_cert_file is not None and self.kafka_tls_key_file is not None:
                context.load_cert_chain(str(self.kafka_tls_cert_file), str(self.kafka_tls_key_file))
            options["ssl_context"] = context
        return options


class KafkaFields(KafkaSecurityFields):
    model_config = settings_config()

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    ticks_topic: str = Field(topics.TICKS_TOPIC, description="Topic the ticks flow through.")
    dead_letter_topic: str = Field(
        topics.DEAD_LETTER_TOPIC, description="Topic for payloads that are not valid ticks."
    )


class RedisFields(BaseSettings):
    model_config = settings_config()

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis URL (password may be given separately)."
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password; overrides one in the URL. Masked when printed."
    )
    redis_username: str | None = Field(
        None,
        description=(
            "Redis ACL user (each service its own: docs/security.md); unset: the default user."
        ),
    )
    redis_tls_ca_file: Path | None = Field(
        None,
        description="CA that signed Redis's certificate (rediss:// URLs); unset: the system's.",
    )
    redis_tls_cert_file: Path | None = Field(
        None, description="Client certificate, for a Redis that requires one (mutual TLS)."
    )
    redis_tls_key_file: Path | None = Field(None, description="The client certificate's key.")

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> RedisFields:
        tls_files = (self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)
        if any(tls_files) and not self.redis_url.startswith("rediss://"):
            raise ValueError(
                "TLS files are set for Redis but TICKLAKE_REDIS_URL is not rediss://: "
                "use rediss://host:port/db for TLS"
            )
        if (self.redis_tls_cert_file is None) != (self.redis_tls_key_file is None):
            raise ValueError("TICKLAKE_REDIS_TLS_CERT_FILE and _KEY_FILE go together")
        return self

    def redis_client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.Redis.from_url(redis_url, ...)``: the
        user, the password and, for rediss://, the TLS files (verified against the CA)."""
        options: dict[str, Any] = {
            "username": self.redis_username,
            "password": self.redis_password.get_secret_value() if self.redis_password else None,
        }
        if self.redis_url.startswith("rediss://"):
            options["ssl_cert_reqs"] = "required"
            if self.redis_tls_ca_file is not None:
                options["ssl_ca_certs"] = str(self.redis_tls_ca_file)
            if self.redis_tls_cert_file is not None and self.redis_tls_key_file is not None:
                options["ssl_certfile"] = str(self.redis_tls_cert_file)
                options["ssl_keyfile"] = str(self.redis_tls_key_file)
        return options


class LakeFields(BaseSettings):
    model_config = settings_config()

    lake_uri: str = Field(
        "./.ticklake/lake",
        description="Root of the Parquet lake: a local path or s3://bucket/prefix.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint for s3:// lakes (MinIO, moto); unset for AWS."
    )
    s3_region: str = Field("us-east-1", description="S3 region for s3:// lakes.")
    s3_access_key_id: SecretStr | None = Field(None, description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key.")
    s3_sse: Literal["none", "AES256", "aws:kms"] = Field(
        "none",
        description=(
            "Server-side encryption of every object ingest writes to an s3:// lake: AES256 "
            "(S3-managed keys) or aws:kms; none: the bucket's default encryption applies."
        ),
    )
    s3_sse_kms_key_id: str | None = Field(
        None, description="KMS key (id, ARN or alias) for s3_sse=aws:kms; unset: the AWS one."
    )

    @model_validator(mode="after")
    def _sse_needs_s3(self) -> LakeFields:
        if self.s3_sse != "none" and not self.lake_uri.startswith("s3://"):
            raise ValueError(
                f"TICKLAKE_S3_SSE={self.s3_sse} needs an s3:// lake; "
                f"TICKLAKE_LAKE_URI is {self.lake_uri!r}"
            )
        if self.s3_sse_kms_key_id and self.s3_sse != "aws:kms":
            raise ValueError("TICKLAKE_S3_SSE_KMS_KEY_ID is set but TICKLAKE_S3_SSE is not aws:kms")
        return self


class HttpFields(BaseSettings):
    model_config = settings_config()

    http_host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
