"""Maximum produce rate of one ticklake producer process, beside Kafka's own ProducerPerformance.

    uv run python bench/bench_produce.py [--records 500000] [--repeats 3]
        [--compression zstd lz4] [--json bench/results/produce.json]

Starts a private Kafka broker (:class:`ticklake.devstack.kafka.KafkaBroker`)
and, for each compression type, alternates ``--repeats`` runs of

* **ticklake**: the producer's own path, in this process: seeded simulator ->
  ``Tick`` -> ``encode_ticks`` -> per-partition record batches ->
  idempotent ``acks=all`` aiokafka producer; timed from the first generated
  tick until the last one is acknowledged (connection set-up excluded);
* **reference**: ``org.apache.kafka.tools.ProducerPerformance`` (the Java
  client, from the kafka-tools jar) with ``acks=all enable.idempotence=true``
  and the same compression, on the same broker, sending the **same bytes**
  (``--payload-file`` with encoded ticks from the same simulator), and once
  more with ``--record-size`` of the mean encoded tick (random letters, the
  form the issue names). Java gets ``batch.size`` equal to our batch ceiling
  (256 KiB) and keeps its other defaults (linger 5 ms, 5 requests in flight).

Each run writes to a fresh 6-partition topic. Reports the medians, the ratio
ticklake / Java, and whether the 100,000 ticks/s target is met. The JVM's
start-up is outside its own measurement (it reports records/s itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import provenance

from ticklake.core.tick import encode_ticks
from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.devstack.kafka import KafkaBroker, java_command
from ticklake.producer.publisher import PublisherConfig, TickPublisher
from ticklake.producer.runner import FeedProgress, KafkaSink, run_simulation
from ticklake.producer.simulator import MarketSimulator, build_market

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 6
BATCH_BYTES = 262_144
TARGET_TICKS_PER_S = 100_000
_JAVA_RATE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


async def _fresh_topic(bootstrap: str) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS, 1)], 30_000)
    return topic


async def ticklake_run(bootstrap: str, records: int, compression: str) -> float:
    """Ticks/s of the producer's own path, first tick to last acknowledgement."""
    topic = await _fresh_topic(bootstrap)
    publisher = TickPublisher(
        PublisherConfig(bootstrap, topic, compression=compression, max_batch_bytes=BATCH_BYTES)
    )
    await publisher.start()
    simulator = MarketSimulator(build_market(), seed=1)
    progress = FeedProgress()
    try:
        start = time.perf_counter()
        await run_simulation(
            simulator,
            KafkaSink(publisher),
            plan=None,
            slice_ms=10,
            feed_start_ns=time.time_ns(),
            duration_s=None,
            count=records,
            stop=asyncio.Event(),
            progress=progress,
        )
        await publisher.flush()
        elapsed = time.perf_counter() - start
    finally:
        await publisher.stop()
    stats = publisher.stats
    if stats.acked != records or stats.failed:
        raise RuntimeError(f"ticklake run lost ticks: {stats}")
    return records / elapsed


def java_run(bootstrap: str, records: int, compression: str, payload: list[str]) -> float:
    """Records/s reported by ProducerPerformance (the Java client)."""
    topic = asyncio.run(_fresh_topic(bootstrap))
    argv = java_command(
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic,
        "--num-records", str(records),
        "--throughput", "-1",
        *payload,
        "--command-property",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        f"compression.type={compression}",
        # The same batch ceiling as ours; Java's default (16 KiB) would handicap it.
        f"batch.size={BATCH_BYTES}",
        heap="512m",
    )  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    matches = _JAVA_RATE.findall(done.stdout)
    if done.returncode != 0 or not matches:
        raise RuntimeError(f"ProducerPerformance failed:\n{done.stdout}\n{done.stderr}")
    sent, rate = matches[-1]
    if int(sent) != records:
        raise RuntimeError(f"ProducerPerformance sent {sent} of {records}")
    return float(rate)


def sample_payloads(path: Path, count: int = 20_000) -> float:
    """Write ``count`` encoded ticks, one per line, for --payload-file; returns the mean size."""
    simulator = MarketSimulator(build_market(), seed=1)
    now = time.time_ns()
    payloads = encode_ticks(simulator.generate(count, now, now + 1_000_000_000).to_ticks())
    path.write_bytes(b"\n".join(payloads))
    return sum(map(len, payloads)) / len(payloads)


def summary(samples: list[float]) -> dict[str, object]:
    return {
        "median": round(statistics.median(samples)),
        "min": round(min(samples)),
        "max": round(max(samples)),
        "runs": [round(s) for s in samples],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compression", nargs="+", default=["zstd", "lz4"])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "produce.json")
    provenance.add_argument(parser)
    args = parser.parse_args()
    stamp = provenance.stamp(args.allow_dirty)

    with tempfile.TemporaryDirectory(prefix="bench-produce-") as tmp:
        payload_file = Path(tmp) / "ticks.txt"
        record_size = round(sample_payloads(payload_file))
        broker = KafkaBroker(Path(tmp) / "kafka", default_partitions=PARTITIONS)
        broker.start()
        try:
            asyncio.run(ticklake_run(broker.bootstrap, 50_000, "zstd"))  # warm-up
            results: dict[str, object] = {}
            for compression in args.compression:
                ours, java_same, java_size = [], [], []
                for _ in range(args.repeats):
                    n = args.records
                    ours.append(asyncio.run(ticklake_run(broker.bootstrap, n, compression)))
                    same = ["--payload-file", str(payload_file)]
                    java_same.append(java_run(broker.bootstrap, n, compression, same))
                    sized = ["--record-size", str(record_size)]
                    java_size.append(java_run(broker.bootstrap, n, compression, sized))
                    print(
                        f"{compression}: ticklake {ours[-1]:,.0f}/s | java same bytes "
                        f"{java_same[-1]:,.0f}/s | java {record_size} B random "
                        f"{java_size[-1]:,.0f}/s",
                        file=sys.stderr,
                    )
                ours_median = statistics.median(ours)
                same_median = statistics.median(java_same)
                size_median = statistics.median(java_size)
                results[compression] = {
                    "ticklake_ticks_per_s": summary(ours),
                    "java_same_payload_records_per_s": summary(java_same),
                    "java_record_size_records_per_s": summary(java_size),
                    "ratio_vs_java_same_payload": round(ours_median / same_median, 3),
                    "ratio_vs_java_record_size": round(ours_median / size_median, 3),
                    "meets_target": ours_median >= TARGET_TICKS_PER_S,
                }
        finally:
            broker.stop()

    report = {
        "produce": results,
        "target_ticks_per_s": TARGET_TICKS_PER_S,
        "records_per_run": args.records,
        "repeats": args.repeats,
        "mean_record_bytes": record_size,
        "partitions": PARTITIONS,
        "settings": "acks=all, idempotence on, batch 256 KiB, 1 broker on loopback, same machine",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "command": "uv run python bench/bench_produce.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
