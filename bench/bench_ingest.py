"""Ingest throughput until durable, at the defaults, lake and Redis on, beside two references.

    uv run python bench/bench_ingest.py [--ticks 1000000] [--repeats 3] [--symbols 100]
        [--partitions 4] [--naive-seconds 120] [--json bench/results/ingest.json] [--allow-dirty]

Starts a private Kafka broker and Redis (``ticklake.devstack``) on loopback,
fills a topic with ``--ticks`` encoded ticks (keyed by symbol, like the
producer), then runs, ``--repeats`` times each, every one in its own process
and consumer group over the same backlog:

* **raw**: an aiokafka consumer that only counts messages (``getmany``,
  20,000 records a call): the client library's own ceiling on this machine;
* **ticklake**: ``ticklake-ingest`` with every setting at its default (lake +
  Redis on: a partition's file rolls at 100,000 rows, after 30 s, or after 1 s
  without new records if it holds 10,000 rows or more). The headline rate is
  **until durable**: from the first record consumed (its ``/metrics``) until
  :class:`DurabilityWatch`, an outside observer, sees every row in committed
  lake files and every offset committed; ``tail_s`` is the part after the last
  record was processed (the idle roll and the last files). The **processed** rate (first
  record consumed -> last record processed, from ``/metrics``) is kept as a
  secondary figure; RSS peak and steady from ``/proc``;
* **ticklake, tables off**: the same with ``TICKLAKE_LAKE_TABLE=none`` (files and
  checkpoints only, no Delta commits), timed the same way: the reference of what the
  tables cost (issue 17: at most 10 % of the durable rate). The tables-on runs also
  report the mean time of one dataset's table commit, from ingest's
  ``ticklake_ingest_lake_table_commit_seconds`` histogram, and how many were made;
* **naive**: ``bench/naive_ingest.py``, a batch prototype (one DataFrame, one
  Parquet file and one Redis pipeline per ``getmany`` batch, offsets committed
  after), timed until durable by the same observer, at most ``--naive-seconds``.

Prints and writes the medians; the target (issue 15) is a durable rate of at
least half the raw consumer's, in the same run, with RSS <= 300 MB while draining.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import naive_ingest
import provenance
import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ticklake.core.tick import Tick, encode_tick
from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.devstack import process
from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.ports import free_port
from ticklake.devstack.redis import RedisServer
from ticklake.ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO_TO_RAW = 0.5
TARGET_RSS_MB = 300
TARGET_TABLES_COST = 0.10
"""The Delta commits may lower the durable rate by at most this fraction (issue 17)."""
OBSERVER_POLL_S = 0.1
"""How often the durability observer looks at the lake files and committed offsets (s)."""
DURABLE_TIMEOUT_S = 120.0
"""Longest wait from every record processed to every row durable (the default roll by
age is 30 s)."""


@contextmanager
def private_stack(base: Path) -> Iterator[tuple[str, RedisServer]]:
    """A Kafka broker and a Redis of our own, stopped at the end."""
    broker = KafkaBroker(base / "kafka")
    redis_server = RedisServer(base / "redis")
    broker.start()
    redis_server.start()
    try:
        yield broker.bootstrap, redis_server
    finally:
        redis_server.stop()
        broker.stop()


async def create_topic(bootstrap: str, partitions: int) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
    return topic


def make_ticks(count: int, symbols: int, seed: int = 1, now_ns: int | None = None) -> list[Tick]:
    """A random walk over ``symbols`` symbols with per-symbol sequence numbers."""
    rng = random.Random(seed)
    names = [f"S{i:03d}" for i in range(symbols)]
    price = [50.0 + i for i in range(symbols)]
    seq = [0] * symbols
    t0 = now_ns if now_ns is not None else time.time_ns()
    out = []
    for i in range(count):
        k = rng.randrange(symbols)
        seq[k] += 1
        price[k] *= 1 + rng.gauss(0, 0.0005)
        p = round(price[k], 4)
        out.append(
            Tick(
                symbol=names[k],
                ts_ns=t0 + i * 10_000,
                price=p,
                size=float(rng.randint(1, 500)),
                exchange="XNAS",
                seq=seq[k],
                bid=p - 0.01,
                ask=p + 0.01,
                bid_size=300.0,
                ask_size=200.0,
            )
        )
    return out


async def fill_topic(bootstrap: str, topic: str, ticks: list[Tick]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=262_144, acks=1
    )
    await producer.start()
    try:
        futures = []
        for t in ticks:
            futures.append(await producer.send(topic, encode_tick(t), key=t.symbol.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# --- the raw counting consumer (also run as a child: --raw-consumer) -----------------------


async def raw_count(bootstrap: str, topic: str, expect: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    count, first = 0, None
    try:
        while count < expect:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            n = sum(len(v) for v in batch.values())
            if n and first is None:
                first = time.monotonic()
            count += n
    finally:
        last = time.monotonic()
        await consumer.stop()
    return {"messages": count, "seconds": last - (first or last)}


def run_child(argv: list[str], timeout_s: float) -> dict[str, Any]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- ticklake-ingest as a child ----------------------------------------------------------------


def ingest_env(
    bootstrap: str, topic: str, redis_server: RedisServer, lake: Path, port: int, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}
    env.update(
        {
            "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TICKLAKE_TICKS_TOPIC": topic,
            "TICKLAKE_DEAD_LETTER_TOPIC": f"{topic}.dlq",
            "TICKLAKE_CONSUMER_GROUP": f"ingest-{uuid.uuid4().hex[:6]}",
            "TICKLAKE_REDIS_URL": redis_server.url,
            "TICKLAKE_REDIS_PASSWORD": redis_server.password,
            "TICKLAKE_LAKE_URI": str(lake),
            "TICKLAKE_HTTP_PORT": str(port),
            "TICKLAKE_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def summed(text: str, name: str) -> float:
    """Sum of a metric over all its label sets (``name{...} value`` and ``name value``)."""
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def start_ingest(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "ticklake.ingest.cli"], env=env, stdout=out, stderr=out, cwd=ROOT
    )


def naive_argv(
    bootstrap: str, topic: str, lake: Path, redis_server: RedisServer, max_seconds: float
) -> list[str]:
    """The command of the naive baseline (bench/naive_ingest.py) in a fresh group."""
    return [
        sys.executable,
        str(ROOT / "bench/naive_ingest.py"),
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        f"naive-{uuid.uuid4().hex[:6]}",
        "--lake",
        str(lake),
        "--redis-url",
        redis_server.url,
        "--redis-password",
        redis_server.password,
        "--max-seconds",
        str(max_seconds),
    ]


def stop_ingest(proc: subprocess.Popen[bytes]) -> None:
    process.stop(proc, timeout=30)


def scrape_metrics(port: int, timeout_s: float) -> Iterator[tuple[float, str]]:
    """(monotonic time, /metrics text) of the ingest on ``port``, every 50 ms, until
    ``timeout_s`` has passed (the caller breaks when it has what it waits for)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                text = http.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            yield time.monotonic(), text
            time.sleep(0.05)


def write_report(path: Path, report: dict[str, Any], *shown: str) -> None:
    """Write a benchmark's JSON report (adding the machine) and print its ``shown`` keys."""
    report.setdefault("machine", {"cpus": os.cpu_count(), "python": platform.python_version()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    for key in shown:
        print(json.dumps(report[key], indent=2))


class DurabilityWatch:
    """An outside observer of durability: rows in committed lake files and committed offsets.

    It reads nothing from the process it watches. Rows: the Parquet footers of the
    files under ``files`` (hidden names are a writer's temporary files; a file that does
    not parse yet is still being written and is read again next time). Offsets: the
    consumer group's committed offsets on ``topic`` from the broker (Kafka admin API).
    """

    def __init__(self, bootstrap: str, topic: str, group: str, files: Path) -> None:
        self.bootstrap, self.topic, self.group, self.files = bootstrap, topic, group, files
        self._rows: dict[Path, int] = {}
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> DurabilityWatch:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self._admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._admin is not None:
            await self._admin.close()

    def lake_rows(self) -> int:
        if self.files.exists():
            for path in self.files.rglob("*.parquet"):
                # not a writer's temporary (.name) nor a table log's checkpoint (_delta_log)
                hidden = any(p.startswith((".", "_")) for p in path.relative_to(self.files).parts)
                if path in self._rows or hidden:
                    continue
                try:
                    self._rows[path] = pq.read_metadata(path).num_rows
                except (OSError, ValueError, pa.ArrowException):
                    continue  # not complete yet (a writer that does not rename)
        return sum(self._rows.values())

    async def committed(self) -> int:
        assert self._admin is not None
        try:
            offsets = await self._admin.list_consumer_group_offsets(self.group)
        except KafkaError:
            return 0
        return sum(
            om.offset for tp, om in offsets.items() if tp.topic == self.topic and om.offset > 0
        )

    async def wait(
        self, expect: int, timeout_s: float, on_poll: Callable[[], None] | None = None
    ) -> float:
        """Wall-clock time (s) at which every row and offset of ``expect`` was durable;
        ``on_poll`` runs at every look (RSS sampling while the files roll)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if on_poll is not None:
                on_poll()
            if self.lake_rows() >= expect and await self.committed() >= expect:
                return time.time()
            await asyncio.sleep(OBSERVER_POLL_S)
        raise RuntimeError(
            f"not durable after {timeout_s:.0f} s: {self.lake_rows()} rows in lake files, "
            f"{await self.committed()} offsets committed, of {expect}"
        )


async def wait_for_metric(port: int, name: str, expect: float, timeout_s: float) -> int:
    """Wall-clock ns at which ingest's ``/metrics`` first shows ``name`` >= ``expect``
    (polled every 50 ms, so up to 50 ms late)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
                continue
            if metric(text, name) >= expect:
                return time.time_ns()
            await asyncio.sleep(0.05)
    raise RuntimeError(f"ingest's {name} did not reach {expect:g} in {timeout_s:.0f} s")


async def first_and_processed(
    port: int, expect: int, rss: list[tuple[float, float]], pid: int, timeout_s: float
) -> tuple[float, float]:
    """Wall-clock times (s) of the first record consumed and of every record processed,
    from ingest's ``/metrics`` sampled every 50 ms; RSS samples go to ``rss``."""
    first: float | None = None
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
                continue
            now = time.time()
            consumed = metric(text, "ticklake_ingest_consumed_total")
            rss.append((consumed, rss_mb(pid)))
            if consumed > 0 and first is None:
                first = now
            if metric(text, "ticklake_ingest_processed_total") >= expect and first is not None:
                return first, now
            await asyncio.sleep(0.05)
    raise RuntimeError(f"ingest did not process {expect} records in {timeout_s:.0f} s")


def run_ticklake(
    bootstrap: str,
    topic: str,
    redis_server: RedisServer,
    expect: int,
    work: Path,
    changed: dict[str, str] | None = None,
    lake: Path | None = None,
) -> dict[str, float]:
    """One drain by ticklake-ingest at its defaults (but ``changed``) into a fresh lake
    (or ``lake``): processed and durable rates, RSS, and its table commits (count, mean
    seconds) from ``/metrics``."""
    port = free_port()
    lake = lake or work / f"lake-{uuid.uuid4().hex[:6]}"
    env = ingest_env(bootstrap, topic, redis_server, lake, port) | (changed or {})
    env.pop("TICKLAKE_LOG_LEVEL")  # every setting at its default, the log level too
    proc = start_ingest(env, work / "ingest.log")
    rss: list[tuple[float, float]] = []

    async def observe() -> tuple[float, float, float]:
        group = env["TICKLAKE_CONSUMER_GROUP"]
        async with DurabilityWatch(bootstrap, topic, group, lake / "ticks") as watch:
            first, processed = await first_and_processed(port, expect, rss, proc.pid, 300)
            durable = await watch.wait(
                expect, DURABLE_TIMEOUT_S, lambda: rss.append((expect, rss_mb(proc.pid)))
            )
        return first, processed, durable

    try:
        first, processed_at, durable_at = asyncio.run(observe())
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop_ingest(proc)
    commit = "ticklake_ingest_lake_table_commit_seconds"
    commits = summed(text, commit + "_count")
    # steady: while the second half of the backlog was being consumed
    steady = [m for consumed, m in rss if expect / 2 <= consumed < expect] or [rss[-1][1]]
    return {
        "processed_ticks_per_s": expect / max(processed_at - first, 1e-9),
        "durable_ticks_per_s": expect / max(durable_at - first, 1e-9),
        "tail_s": durable_at - processed_at,
        "rss_peak_mb": max(m for _, m in rss),
        "rss_steady_mb": statistics.median(steady),
        "table_commits": commits,
        "table_commit_mean_ms": 1000 * summed(text, commit + "_sum") / max(commits, 1),
    }


def run_naive(
    bootstrap: str, topic: str, redis_server: RedisServer, expect: int, lake: Path, cap_s: float
) -> float:
    """One drain by the naive batch ingest: ticks/s from its first message until the
    observer sees every row in its files and every offset committed."""
    argv = naive_argv(bootstrap, topic, lake, redis_server, cap_s)
    group = argv[argv.index("--group") + 1]
    naive = run_child([*argv, "--expect", str(expect)], cap_s + 120)

    async def durable_at() -> float:
        async with DurabilityWatch(bootstrap, topic, group, lake) as watch:
            # the child has exited: its files and commits are final, or never will be
            return await watch.wait(expect, 5)

    done = asyncio.run(durable_at())
    if not naive.get("first_ns"):
        raise RuntimeError("the naive ingest consumed nothing")
    # its own last-commit time, not our later look, ends the drain (it has exited by then)
    end = min(done, float(naive["last_commit_ns"]) / 1e9)
    return expect / max(end - float(naive["first_ns"]) / 1e9, 1e-9)


def summary(values: list[float], digits: int = 1) -> dict[str, object]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--naive-seconds", type=float, default=120.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/ingest.json")
    parser.add_argument(
        "--raw-consumer", nargs=3, metavar=("BOOTSTRAP", "TOPIC", "EXPECT"), help=argparse.SUPPRESS
    )
    provenance.add_argument(parser)
    args = parser.parse_args()
    if args.raw_consumer:
        bootstrap, topic, expect = args.raw_consumer
        print(json.dumps(asyncio.run(raw_count(bootstrap, topic, int(expect)))))
        return
    stamp = provenance.stamp(args.allow_dirty)

    results: dict[str, list[float]] = {
        "raw_msgs_per_s": [],
        "ticklake_durable_ticks_per_s": [],
        "ticklake_processed_ticks_per_s": [],
        "ticklake_tail_s": [],
        "ticklake_rss_peak_mb": [],
        "ticklake_rss_steady_mb": [],
        "ticklake_table_commits": [],
        "ticklake_table_commit_mean_ms": [],
        "tables_off_durable_ticks_per_s": [],
        "naive_durable_ticks_per_s": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        with private_stack(work) as (bootstrap, redis_server):
            topic = asyncio.run(create_topic(bootstrap, args.partitions))
            started = time.monotonic()
            asyncio.run(fill_topic(bootstrap, topic, make_ticks(args.ticks, args.symbols)))
            print(f"filled {topic} with {args.ticks} ticks in {time.monotonic() - started:.1f}s")
            for run in range(args.repeats):
                raw = run_child(
                    [sys.executable, __file__, "--raw-consumer", bootstrap, topic, str(args.ticks)],
                    300,
                )
                results["raw_msgs_per_s"].append(float(raw["messages"]) / float(raw["seconds"]))
                tl = run_ticklake(bootstrap, topic, redis_server, args.ticks, work)
                for key, value in tl.items():
                    results[f"ticklake_{key}"].append(value)
                off = run_ticklake(bootstrap, topic, redis_server, args.ticks, work,
                                   {"TICKLAKE_LAKE_TABLE": "none"})  # fmt: skip
                results["tables_off_durable_ticks_per_s"].append(off["durable_ticks_per_s"])
                lake = work / f"naive-{run}"
                results["naive_durable_ticks_per_s"].append(
                    run_naive(bootstrap, topic, redis_server, args.ticks, lake, args.naive_seconds)
                )
                print(
                    f"run {run + 1}: " + ", ".join(f"{k}={v[-1]:,.0f}" for k, v in results.items())
                )

    defaults = IngestSettings.model_fields
    durable = statistics.median(results["ticklake_durable_ticks_per_s"])
    tables_off = statistics.median(results["tables_off_durable_ticks_per_s"])
    report = {
        "benchmark": "ingest throughput (backlog drain) until durable, lake + Redis on",
        "ticks": args.ticks,
        "symbols": args.symbols,
        "partitions": args.partitions,
        "repeats": args.repeats,
        "settings": {
            "all_defaults": True,
            "ingest": "every setting at its default (lake and Redis on)",
            "lake_roll_seconds": defaults["lake_roll_seconds"].default,
            "lake_roll_rows": defaults["lake_roll_rows"].default,
            "lake_roll_idle_seconds": defaults["lake_roll_idle_seconds"].default,
            "lake_roll_idle_min_rows": defaults["lake_roll_idle_min_rows"].default,
            "observer_poll_s": OBSERVER_POLL_S,
            "naive": naive_ingest.DESCRIPTION,
        },
        "results": {k: summary(v) for k, v in results.items()},
        "targets": {
            "durable_ratio_to_raw": TARGET_RATIO_TO_RAW,
            "met": durable >= TARGET_RATIO_TO_RAW * statistics.median(results["raw_msgs_per_s"]),
            "rss_mb": TARGET_RSS_MB,
            "rss_met": statistics.median(results["ticklake_rss_steady_mb"]) <= TARGET_RSS_MB,
            "tables_cost_max": TARGET_TABLES_COST,
            "tables_ratio_to_off": round(durable / tables_off, 3),
            "tables_met": durable >= (1 - TARGET_TABLES_COST) * tables_off,
        },
        "command": "uv run python bench/bench_ingest.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    write_report(args.json, report, "results", "targets")


if __name__ == "__main__":
    main()
