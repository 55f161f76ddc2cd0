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
a flush's cost of the table at this lake size. What compaction does to ingest's durable
rate while both run is not measured here.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import provenance
import pyarrow.parquet as pq
from bench_ingest import summary, write_report
from query_data import DAY_START_NS, SYMBOL, TICK_SCHEMA, day_ticks, tick_rows

from ticklake.core.lake_fs import open_lake
from ticklake.core.lake_layout import TICKS_DATASET, LakeFile, utc_date
from ticklake.core.lake_table import file_stats
from ticklake.core.settings import LakeFields
from ticklake.ingest import lake_maintenance
from ticklake.ingest.sinks.lake_table import LakeTables, TableFile
from ticklake.query.lake_reader import LakeReader

ROOT = Path(__file__).resolve().parents[1]
DAY_NS = 86_400 * 1_000_000_000


def build(root: Path, n: int, file_rows: int) -> list[float]:
    """The day as small files in a ticks table; returns each commit's seconds."""
    lake = open_lake(LakeFields(lake_uri=str(root)))
    tables = LakeTables(lake, "bench", {TICKS_DATASET: TICK_SCHEMA})
    t = day_ticks(n)
    date = utc_date(DAY_START_NS)
    commits = []
    for lo in range(0, n, file_rows):
        hi = min(n, lo + file_rows)
        table = tick_rows(t, lo, hi)
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
        "command": "uv run python bench/bench_lake_table.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    write_report(args.json, report, "results", "commit_ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
