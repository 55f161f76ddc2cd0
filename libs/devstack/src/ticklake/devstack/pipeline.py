"""The whole pipeline on one machine: Kafka, Redis, producer, ingest, query API.

``make run`` calls this through ``ticklake-stack run``. Each service runs as
its own process from its own console script with ``TICKLAKE_*`` settings, the
way it runs in a pod, and logs to ``<data_dir>/logs/<service>.log``.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ticklake.core import topics
from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.devstack import metrics_text, ports, process, secure_stack
from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.redis import RedisServer

# Names of the figures the progress line shows; each is defined by its service.
PRODUCED_TOTAL = "ticklake_producer_ticks_sent_total"
INGESTED_TOTAL = "ticklake_ingest_processed_total"
LAG = "ticklake_ingest_committed_lag"
E2E_LATENCY = "ticklake_ingest_e2e_latency_seconds"


@dataclass(frozen=True)
class PipelineOptions:
    data_dir: Path
    rate: int
    symbols: str | None
    partitions: int
    duration: float | None
    kafka_port: int
    redis_port: int
    query_port: int
    producer_port: int
    ingest_port: int
    external_kafka: str | None = None
    redis_password: str = "ticklake-dev"
    secure: bool = False
    """Kafka SASL_SSL with a user and ACLs per service, Redis TLS with a user per
    service, API keys on (:mod:`ticklake.devstack.secure_stack`)."""


@dataclass
class _Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    proc: subprocess.Popen[bytes] | None = None


def _console_script(name: str) -> str | None:
    """A console script of the running environment (the workspace venv)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


@dataclass
class _Rates:
    """Turns counters into per-second rates between two progress lines."""

    last: dict[str, tuple[float, float]] = field(default_factory=dict)

    def rate(self, key: str, value: float) -> float:
        now = time.monotonic()
        before = self.last.get(key)
        self.last[key] = (now, value)
        if before is None or now <= before[0]:
            return 0.0
        return max(0.0, (value - before[1]) / (now - before[0]))


def create_topics(bootstrap: str, partitions: int) -> None:
    """Create the ticks topic and its dead-letter topic; existing ones are kept."""
    specs = [TopicSpec(topics.TICKS_TOPIC, partitions), TopicSpec(topics.DEAD_LETTER_TOPIC, 1)]
    asyncio.run(ensure_topics(bootstrap, specs))


class Pipeline:
    def __init__(self, options: PipelineOptions) -> None:
        self.options = options
        self.kafka: KafkaBroker | None = None
        self.redis: RedisServer | None = None
        self.services: list[_Service] = []
        self.credentials: secure_stack.Credentials | None = None
        self._rates = _Rates()
        self._last_latency_buckets: dict[float, float] = {}

    @property
    def bootstrap(self) -> str:
        if self.options.external_kafka:
            return self.options.external_kafka
        assert self.kafka is not None
        return self.kafka.bootstrap

    def start(self) -> None:
        o = self.options
        o.data_dir.mkdir(parents=True, exist_ok=True)
        if o.secure:
            self._check_secure_folder()
            self.credentials = secure_stack.Credentials.load_or_create(o.data_dir / "secrets")
        if not o.external_kafka:
            mode = "SASL_SSL " if o.secure else ""
            print(f"kafka      starting {mode}on 127.0.0.1:{o.kafka_port} ...", flush=True)
            self.kafka = KafkaBroker(
                o.data_dir / "kafka", o.kafka_port, default_partitions=o.partitions,
                sasl_users=self.credentials.kafka if self.credentials else None,
            )  # fmt: skip
            self.kafka.start()
        redis_password = self.credentials.redis_admin if self.credentials else o.redis_password
        self.redis = RedisServer(
            o.data_dir / "redis", o.redis_port, password=redis_password,
            tls=o.secure, users=self.credentials.redis_users() if self.credentials else None,
        )  # fmt: skip
        self.redis.start()
        print(f"redis      {self.redis.url}", flush=True)
        common = {
            "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TICKLAKE_TICKS_TOPIC": topics.TICKS_TOPIC,
            "TICKLAKE_REDIS_URL": self.redis.url,
            "TICKLAKE_LAKE_URI": str(o.data_dir / "lake"),
            "TICKLAKE_TOPIC_PARTITIONS": str(o.partitions),
        }
        # Topics exist before any service starts, as the chart's KafkaTopics do in
        # Kubernetes: a consumer that subscribes to a missing topic would only see it
        # at its next metadata refresh. In secure mode no service may create topics
        # (the chart's ACLs): they are made through the broker's own loopback listener.
        create_topics(self._admin_bootstrap, o.partitions)
        per_service = self._security_env() if self.credentials else {
            name: {"TICKLAKE_REDIS_PASSWORD": o.redis_password} for name in ("ingest", "query-api")
        }  # fmt: skip
        producer_env = {**common, **per_service.get("producer", {}),
                        "TICKLAKE_HTTP_PORT": str(o.producer_port),
                        "TICKLAKE_FEED_RATE": str(o.rate)}  # fmt: skip
        if o.symbols:
            producer_env["TICKLAKE_FEED_SYMBOLS"] = o.symbols
        # A local demo on loopback: API keys off unless --secure (where_to_look says so);
        # the chart turns them on.
        query_auth = (
            {"TICKLAKE_AUTH_ENABLED": "true",
             "TICKLAKE_AUTH_KEYS_FILE": str(self.credentials.keys_file)}
            if self.credentials else {"TICKLAKE_AUTH_ENABLED": "false"}
        )  # fmt: skip
        wanted = [
            # ingest first so it is subscribed when the first ticks arrive
            ("ingest", "ticklake-ingest", [],
             {**common, **per_service["ingest"], "TICKLAKE_HTTP_PORT": str(o.ingest_port)},
             o.ingest_port),
            ("query-api", "ticklake-query", ["serve"],
             {**common, **per_service["query-api"], "TICKLAKE_HTTP_PORT": str(o.query_port),
              **query_auth}, o.query_port),
            ("producer", "ticklake-producer", ["serve"], producer_env, o.producer_port),
        ]  # fmt: skip
        for name, script, args, env, port in wanted:
            path = _console_script(script)
            if path is None:
                print(f"{name:<11}not installed yet ({script}); skipped", flush=True)
                continue
            service = _Service(name, [path, *args], env, port)
            service.proc = process.spawn(service.argv, o.data_dir / "logs" / f"{name}.log", env=env)
            self.services.append(service)

            def listening_or_dead(s: _Service = service) -> bool:
                return ports.port_open(s.port) or not self._alive(s)

            try:
                ports.wait_until(listening_or_dead, 60, f"{name} on port {port}")
            except TimeoutError:
                pass
            state = "up" if self._alive(service) else "FAILED (see its log)"
            print(f"{name:<11}{state} http://127.0.0.1:{port}", flush=True)

    @property
    def _admin_bootstrap(self) -> str:
        """Where topics are made: in secure mode the broker's loopback PLAINTEXT listener,
        which only the broker and its admin tools use."""
        if self.kafka is not None and self.credentials is not None:
            return f"127.0.0.1:{self.kafka.internal_port}"
        return self.bootstrap

    def _check_secure_folder(self) -> None:
        kafka_formatted = (self.options.data_dir / "kafka" / "data" / "meta.properties").exists()
        has_secrets = (self.options.data_dir / "secrets" / "credentials.json").exists()
        if self.options.external_kafka:
            raise RuntimeError(
                "--secure starts its own Kafka with users and ACLs: unset "
                "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS"
            )
        if kafka_formatted and not has_secrets:
            raise RuntimeError(
                f"{self.options.data_dir} holds a stack started without --secure (its Kafka "
                "has no users): add --fresh, or give another --data-dir"
            )

    def _security_env(self) -> dict[str, dict[str, str]]:
        """Each service's own Kafka and Redis credentials (secure mode), and its ACLs
        applied to the broker."""
        creds, kafka, redis = self.credentials, self.kafka, self.redis
        assert creds is not None and kafka is not None and redis is not None
        for user, acls in secure_stack.kafka_acls().items():
            kafka.allow_acls(user, acls)
        query_cli = _console_script("ticklake-query")
        if query_cli is not None:
            creds.ensure_api_key(query_cli)
        return {
            "producer": secure_stack.kafka_client_env(
                "producer", creds.kafka["producer"], kafka.tls_ca
            ),
            "ingest": secure_stack.kafka_client_env("ingest", creds.kafka["ingest"], kafka.tls_ca)
            | secure_stack.redis_client_env("ingest", creds.redis["ingest"], redis.tls_ca),
            "query-api": secure_stack.redis_client_env("query", creds.redis["query"], redis.tls_ca),
        }

    @staticmethod
    def _alive(service: _Service) -> bool:
        return service.proc is not None and service.proc.poll() is None

    def failed_services(self) -> list[str]:
        return [s.name for s in self.services if not self._alive(s)]

    def where_to_look(self, prometheus_url: str | None) -> str:
        o = self.options
        lines = ["", "ticklake is running. Where to look:"]
        by_name = {s.name: s for s in self.services}
        if "query-api" in by_name:
            lines += [
                f"  live board        http://127.0.0.1:{o.query_port}/",
                f"  API docs          http://127.0.0.1:{o.query_port}/docs",
                f"  latest AAPL       http://127.0.0.1:{o.query_port}/latest/AAPL",
            ]
            if self.credentials is not None:
                token = self.credentials.token_file
                lines += [
                    f"  API key           in {token} (the live board asks for it)",
                    f'  try               curl -H "Authorization: Bearer $(cat {token})" '
                    f"http://127.0.0.1:{o.query_port}/latest/AAPL",
                    "  Kafka, Redis      SASL_SSL and TLS, a user per service "
                    f"(passwords in {self.credentials.folder})",
                ]
            else:
                lines.append(
                    "  API keys          off (local demo; `make run-secure` turns them on)"
                )
        for s in self.services:
            lines.append(f"  {s.name + ' metrics':<18}http://127.0.0.1:{s.port}/metrics")
        if prometheus_url:
            lines.append(f"  Prometheus        {prometheus_url}")
        lines += [f"  logs              {o.data_dir / 'logs'}", "Ctrl-C stops everything.", ""]
        return "\n".join(lines)

    def progress_line(self) -> str:
        o = self.options
        produced = metrics_text.scrape(f"http://127.0.0.1:{o.producer_port}/metrics")
        ingested = metrics_text.scrape(f"http://127.0.0.1:{o.ingest_port}/metrics")
        parts = []
        if produced is not None:
            total = metrics_text.sample_sum(produced, PRODUCED_TOTAL)
            parts.append(f"produced {self._rates.rate('p', total):>8.0f}/s ({total:.0f})")
        if ingested is not None:
            total = metrics_text.sample_sum(ingested, INGESTED_TOTAL)
            lag = metrics_text.sample_sum(ingested, LAG)
            # Quantiles of the last interval only: the histogram is cumulative, and
            # start-up would otherwise dominate the tail for the whole run.
            buckets = metrics_text.histogram_buckets(ingested, E2E_LATENCY)
            window = metrics_text.bucket_delta(buckets, self._last_latency_buckets)
            self._last_latency_buckets = buckets
            p50 = metrics_text.quantile(window, 0.5)
            p99 = metrics_text.quantile(window, 0.99)
            parts.append(f"ingested {self._rates.rate('i', total):>8.0f}/s ({total:.0f})")
            parts.append(f"lag {lag:.0f}")
            if not math.isnan(p50):
                parts.append(f"e2e p50 {p50 * 1000:.1f} ms p99 {p99 * 1000:.1f} ms")
        return " | ".join(parts) if parts else "waiting for services ..."

    def stop(self) -> None:
        # Reverse order: the producer stops sending, ingest drains and commits,
        # then the servers go.
        for service in reversed(self.services):
            process.stop(service.proc, timeout=30)
        if self.redis:
            self.redis.stop()
        if self.kafka:
            self.kafka.stop()
