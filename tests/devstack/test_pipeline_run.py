"""`make run` end to end: the whole pipeline comes up, ticks flow to the lake, Ctrl-C stops it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
def test_run_brings_up_the_pipeline_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, secure: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS"}
    stack = Path(sys.executable).parent / "ticklake-stack"
    proc = subprocess.Popen(
        [str(stack), "run", "--rate", "500", "--partitions", "2", "--no-prometheus",
         "--data-dir", str(tmp_path), *(["--secure"] if secure else [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )  # fmt: skip
    chunks: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: proc.stdout.read(64), "")), daemon=True
    )
    reader.start()
    output = ""
    try:
        deadline = time.monotonic() + 180
        ingested = 0
        query_url = None
        while time.monotonic() < deadline and proc.poll() is None:
            output = "".join(chunks)
            if query_url is None:
                m = re.search(r"latest AAPL\s+(http://\S+)", output)
                query_url = m.group(1) if m else None
            counts = re.findall(r"ingested\s+\d+/s \((\d+)\)", output)
            ingested = int(counts[-1]) if counts else 0
            if ingested >= 2000:
                break
            time.sleep(0.5)
        assert ingested >= 2000, f"pipeline did not ingest ticks:\n{output[-3000:]}"
        assert query_url is not None, output[-3000:]
        if secure:
            _check_every_hop_is_protected(tmp_path, output, query_url)
        else:
            with urllib.request.urlopen(query_url, timeout=5) as response:
                assert response.status == 200
                assert b"AAPL" in response.read()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
        reader.join(timeout=10)
        output = "".join(chunks)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    assert "stopped cleanly" in output
    for service in ("ingest", "query-api", "producer"):
        assert re.search(rf"{service}\s+up ", output), f"{service} did not start:\n{output}"

    # Nothing lost inside what reached the lake, nothing twice: per symbol the
    # sequence numbers are exactly first..first+n-1, and every symbol's series
    # starts where the feed starts it.
    table = ds.dataset(tmp_path / "lake" / "ticks", format="parquet", partitioning="hive")
    rows = table.to_table(columns=["symbol", "seq"]).to_pylist()
    assert len(rows) >= 2000
    by_symbol: dict[str, list[int]] = {}
    for row in rows:
        by_symbol.setdefault(row["symbol"], []).append(row["seq"])
    firsts = {min(seqs) for seqs in by_symbol.values()}
    assert len(firsts) == 1, f"a symbol lost its first ticks: {firsts}"
    first = firsts.pop()
    for symbol, seqs in by_symbol.items():
        assert sorted(seqs) == list(range(first, first + len(seqs))), f"{symbol}: gap or dup"


def _check_every_hop_is_protected(data_dir: Path, output: str, query_url: str) -> None:
    """The secure stack, while it runs: the API wants the key it wrote, Redis wants TLS
    and a user, Kafka wants SASL_SSL and a user."""
    token = (data_dir / "secrets" / "api-token").read_text().strip()
    assert token not in output, "the token was printed"
    assert oct((data_dir / "secrets" / "api-token").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(query_url, timeout=5)
    assert refused.value.code == 401
    request = urllib.request.Request(query_url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert b"AAPL" in response.read()
    # Redis: rediss:// only; plain TCP gets no answer, TLS without a user is refused
    redis_url = re.search(r"redis\s+(rediss://127\.0\.0\.1:(\d+)/0)", output)
    assert redis_url, output[-3000:]
    port = int(redis_url.group(2))
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_timeout=3).ping()
    ca = str(data_dir / "redis" / "tls" / "ca.crt")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, ssl=True, ssl_ca_certs=ca, username="query",
                    password="wrong", socket_timeout=3).ping()  # fmt: skip
    # Kafka: a client without credentials is refused on the stack's port
    kafka_port = int(re.search(r"kafka\s+starting SASL_SSL on 127\.0\.0\.1:(\d+)", output)[1])  # type: ignore[index]

    async def anonymous() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{kafka_port}",
                                    request_timeout_ms=5_000)  # fmt: skip
        try:
            with pytest.raises(KafkaError):
                await producer.start()
        finally:
            await producer.stop()

    asyncio.run(anonymous())


def test_secure_mode_refuses_a_folder_whose_kafka_has_no_users(tmp_path: Path) -> None:
    # A folder a plain `make run` used: its Kafka was formatted without SCRAM users, so
    # the services could never log in. Refused before anything starts, with what to do.
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("version=1\n")
    stack = Path(sys.executable).parent / "ticklake-stack"
    env = {k: v for k, v in os.environ.items() if k != "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS"}
    result = subprocess.run(
        [str(stack), "run", "--secure", "--no-prometheus", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert "started without --secure" in result.stderr and "--fresh" in result.stderr
    assert not (tmp_path / "secrets").exists()
