"""The lake as a Delta table: compaction of a day of small files, and /bars before and after.

    uv run python bench/bench_lake_table.py [--ticks 10000000] [--file-rows 10000]
        [--repeats 3] [--json bench/results/lake_table.json] [--allow-dirty]

One UTC day of one symbol (``bench/query_data.py``'s ticks: the query benchmark's day),
written as ingest's small files of ``--file-rows`` rows each (a partition rolling every
flush) and added to a ``ticks`` Delta table one commit per file, with each commit's
offset as its transaction version, as ingest commits them. Then, ``--repeats`` times on
a fresh copy of that lake:

* the query API's lake reader (``LakeReader.bars``: 1-minute bars of the day, through
  the table snapshot) timed before compaction (median of 3 calls);
* ``ticklake-lake``'s :func:`compact_day` over the day: seconds, rows/s, files before
  and after;
* the same bars after compaction (median of 3), and their equality with the ones before.

Also: the time of one table commit while building (median and p99 over every file):
a flush's cost of the table at this lake size.

And what a compaction does to ingest beside it: a private Kafka broker and Redis, a topic
filled with ``--ingest-ticks`` ticks (``bench_ingest.make_ticks``, today's dates), drained
``--repeats`` times by ticklake-ingest at its defaults into a copy of the lake above, once
alone and once while ``ticklake-lake compact`` rewrites the old day in another process
(started with ingest): the durable rates (``bench_ingest.run_ticklake``: every row in
committed files and its offset committed), the compaction's own seconds and ingest's
seconds from its start to every row durable (the compaction overlaps the drain while it
is the longer of the two).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import provenance
import pyarrow as pa
import pyarrow.parquet as pq
from bench_ingest import (
    create_topic,
    fill_topic,
    make_ticks,
    private_stack,
    run_ticklake,
    summary,
    write_report,
)
from query_data import DAY_START_NS, SYMBOL, day_ticks, tick_rows

from ticklake.core.lake_fs import open_lake
from ticklake.core.lake_layout import TICKS_DATASET, LakeFile, utc_date
from ticklake.core.lake_table import file_stats
from ticklake.core.settings import LakeFields
from ticklake.ingest import lake_maintenance
from ticklake.ingest.partition import TICK_FILE_SCHEMA
from ticklake.ingest.sinks.lake_table import LakeTables, TableFile
from ticklake.query.lake_reader import LakeReader

ROOT = Path(__file__).resolve().parents[1]
DAY_NS = 86_400 * 1_000_000_000


def build(root: Path, n: int, file_rows: int) -> list[float]:
    """The day as small files in a ticks table; returns each commit's seconds."""
    lake = open_lake(LakeFields(lake_uri=str(root)))
    tables = LakeTables(lake, "bench", {TICKS_DATASET: TICK_FILE_SCHEMA})
    t = day_ticks(n)
    date = utc_date(DAY_START_NS)
    commits = []
    for lo in range(0, n, file_rows):
        hi = min(n, lo + file_rows)
        table = as_ingest_writes(tick_rows(t, lo, hi))
        name = LakeFile(TICKS_DATASET, date, 0, lo, hi - 1)
        path = root / name.relative_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd", row_group_size=256_000)
        add = TableFile(TICKS_DATASET, date, f"date={date}/{name.name}", path.stat().st_size,
                        file_stats(table))  # fmt: skip
        started = time.perf_counter()
        tables.commit(0, hi, [add])
        commits.append(time.perf_counter() - started)
    return commits


def as_ingest_writes(rows: pa.Table) -> pa.Table:
    """The rows with every column of ingest's tick files (flags false, features zero or
    null), so ingest can append to the same table during the compaction."""
    columns = []
    for field in TICK_FILE_SCHEMA:
        if field.name in rows.column_names:
            columns.append(rows.column(field.name))
        elif field.nullable:
            columns.append(pa.nulls(rows.num_rows, field.type))
        else:
            columns.append(pa.array(np.zeros(rows.num_rows, dtype=np.int8)).cast(field.type))
    return pa.Table.from_arrays(columns, schema=TICK_FILE_SCHEMA)


def ingest_beside_compaction(
    built: Path, work: Path, ticks: int, repeats: int
) -> dict[str, list[float]]:
    """Ingest's durable rate alone and while a compaction of the old day runs."""
    out: dict[str, list[float]] = {"alone": [], "beside": [], "compaction_s": [], "drain_s": []}
    with private_stack(work / "stack") as (bootstrap, redis_server):
        topic = asyncio.run(create_topic(bootstrap, 4))
        asyncio.run(fill_topic(bootstrap, topic, make_ticks(ticks, 100)))
        day = utc_date(DAY_START_NS)
        for run in range(repeats):
            alone = work / f"alone-{run}"
            shutil.copytree(built, alone)
            out["alone"].append(
                run_ticklake(bootstrap, topic, redis_server, ticks, work, lake=alone)[
                    "durable_ticks_per_s"
                ]
            )
            shutil.rmtree(alone)
            beside = work / f"beside-{run}"
            shutil.copytree(built, beside)
            env = {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}
            started = time.monotonic()
            compaction = subprocess.Popen(
                [sys.executable, "-m", "ticklake.ingest.lake_cli", "compact", "--dataset",
                 TICKS_DATASET, "--date", day],
                env={**env, "TICKLAKE_LAKE_URI": str(beside)}, stdout=subprocess.PIPE,
            )  # fmt: skip
            rate = run_ticklake(bootstrap, topic, redis_server, ticks, work, lake=beside)[
                "durable_ticks_per_s"
            ]
            drain_s = time.monotonic() - started
            printed, _ = compaction.communicate(timeout=600)
            if compaction.returncode != 0:
                raise SystemExit("the compaction beside ingest failed")
            (result,) = json.loads(printed)
            out["beside"].append(rate)
            out["compaction_s"].append(result["seconds"])
            out["drain_s"].append(drain_s)
            shutil.rmtree(beside)
    return out


def bars_seconds(root: Path) -> tuple[float, list[tuple[int, int]]]:
    """Median seconds of the day's 1-minute bars through the table, and the bars."""
    lake = open_lake(LakeFields(lake_uri=str(root)))
    reader = LakeReader(lake, duckdb.connect())
    times: list[float] = []
    bars: list[dict[str, Any]] = []
    for _ in range(3):
        started = time.perf_counter()
        bars, _ = reader.bars(SYMBOL, 60 * 10**9, DAY_START_NS, DAY_START_NS + DAY_NS)
        times.append(time.perf_counter() - started)
    return statistics.median(times), [(b["start_ns"], b["tick_count"]) for b in bars]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=10_000_000)
    parser.add_argument("--file-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ingest-ticks", type=int, default=1_000_000, help="0: not beside ingest (quick runs)"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/lake_table.json")
    provenance.add_argument(parser)
    args = parser.parse_args()
    stamp = provenance.stamp(args.allow_dirty)
    day = utc_date(DAY_START_NS)
    results: dict[str, list[float]] = {
        "bars_before_s": [], "bars_after_s": [], "compact_s": [], "compact_rows_per_s": [],
    }  # fmt: skip
    files_before = files_after = 0
    with tempfile.TemporaryDirectory(prefix="bench-lake-table-") as tmp:
        built = Path(tmp) / "built"
        started = time.monotonic()
        commits = build(built, args.ticks, args.file_rows)
        print(f"{len(commits)} files and commits in {time.monotonic() - started:.1f} s", flush=True)
        for run in range(args.repeats):
            root = Path(tmp) / f"run-{run}"
            shutil.copytree(built, root)
            before_s, bars_before = bars_seconds(root)
            lake = open_lake(LakeFields(lake_uri=str(root)))
            result = lake_maintenance.compact_day(lake, TICKS_DATASET, day)
            after_s, bars_after = bars_seconds(root)
            if bars_after != bars_before:
                raise SystemExit("bars differ after compaction: the benchmark found a bug")
            files_before, files_after = result.files_before, result.files_after
            results["bars_before_s"].append(before_s)
            results["bars_after_s"].append(after_s)
            results["compact_s"].append(result.seconds)
            results["compact_rows_per_s"].append(result.rows / result.seconds)
            print(f"run {run + 1}: bars {before_s:.3f} s -> {after_s:.3f} s, compaction "
                  f"{result.seconds:.1f} s ({files_before} -> {files_after} files)",
                  flush=True)  # fmt: skip
            shutil.rmtree(root)
        beside: dict[str, list[float]] = {}
        if args.ingest_ticks > 0:
            beside = ingest_beside_compaction(built, Path(tmp), args.ingest_ticks, args.repeats)
        for run in range(len(beside.get("alone", []))):
            print(f"run {run + 1}: ingest alone {beside['alone'][run]:,.0f} ticks/s, beside "
                  f"a compaction {beside['beside'][run]:,.0f} (the compaction itself "
                  f"took {beside['compaction_s'][run]:.1f} s, ingest "
                  f"{beside['drain_s'][run]:.1f} s to every row durable)",
                  flush=True)  # fmt: skip
    ms = sorted(1000 * c for c in commits)
    report = {
        "benchmark": "lake table: compaction of one day of small files, /bars before and after",
        "ticks": args.ticks,
        "file_rows": args.file_rows,
        "repeats": args.repeats,
        "files_per_day_before": files_before,
        "files_per_day_after": files_after,
        "commit_ms": {
            "median": round(statistics.median(ms), 3),
            "p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3),
            "commits": len(ms),
        },
        "results": {
            **{k: summary(v, 3) for k, v in results.items() if k != "compact_rows_per_s"},
            "compact_rows_per_s": summary(results["compact_rows_per_s"], 0),
        },
        "ingest_beside_compaction": {
            "ingest_ticks": args.ingest_ticks,
            "durable_ticks_per_s_alone": summary(beside["alone"], 0),
            "durable_ticks_per_s_beside": summary(beside["beside"], 0),
            "compaction_s": summary(beside["compaction_s"]),
            "ingest_start_to_durable_s": summary(beside["drain_s"]),
        }
        if beside
        else None,
        "command": "uv run python bench/bench_lake_table.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    write_report(args.json, report, "results", "commit_ms", "ingest_beside_compaction")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
