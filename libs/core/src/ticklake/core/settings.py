"""Settings fields every service shares, as pydantic-settings mixins.

Each service has exactly one settings class that inherits the pieces it needs
and is read from the environment with the common prefix ``TICKLAKE_``
(``TICKLAKE_KAFKA_BOOTSTRAP_SERVERS``, ``TICKLAKE_REDIS_URL`` ...). Secrets
are :class:`~pydantic.SecretStr`, so printing settings masks them. The table
of every variable is in ``docs/settings.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticklake.core import topics

ENV_PREFIX: Final = "TICKLAKE_"


def settings_config() -> SettingsConfigDict:
    """The model config every service's settings class uses."""
    return SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)


class KafkaFields(BaseSettings):
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


class HttpFields(BaseSettings):
    model_config = settings_config()

    http_host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
