"""Another engine reads ticklake's tables: Spark with Delta Lake's own connector (not
delta-rs, which ticklake writes with) agrees with the query API on the rows and a bar,
before and after a compaction, and reads an older version (time travel).

Spark and the Delta jars are installed by ``tools/spark/install.sh`` (``tools/bootstrap.sh
--test`` runs it), cached in ``~/.cache/ticklake``; the versions are the script's."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable
from ingest_kit import DAY0_NS, three_days

from ticklake.core.lake_fs import Lake
from ticklake.core.lake_layout import utc_date
from ticklake.ingest import lake_maintenance
from ticklake.query.lake_reader import LakeReader

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "tools" / "spark" / "install.sh"
MINUTE_NS = 60 * 10**9


def spark_home() -> Path:
    script = INSTALL.read_text()
    pyspark = re.search(r"^PYSPARK=(\S+)", script, re.M)
    jars = re.search(r"^DELTA_JARS=(\S+)", script, re.M)
    assert pyspark and jars, "tools/spark/install.sh names its versions"
    home = Path.home() / ".cache" / "ticklake" / f"spark-{pyspark[1]}-delta-{jars[1]}"
    if not (home / "ready").exists():
        pytest.skip(f"Spark with Delta is not installed in {home}: run bash {INSTALL}")
    return home


def spark_read(home: Path, table: Path, symbol: str, minute_ns: int, version: int) -> dict:  # type: ignore[type-arg]
    jars = sorted(str(j) for j in (home / "jars").glob("*.jar"))
    result = subprocess.run(
        [str(home / "venv" / "bin" / "python"), str(Path(__file__).with_name("spark_read_lake.py")),
         str(table), symbol, str(minute_ns), str(version), *jars],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


async def test_spark_reads_the_tables_and_agrees_with_the_query_api(tmp_path: Path) -> None:
    home = spark_home()
    root = tmp_path / "lake"
    feed = await three_days(root)
    reader = LakeReader(
        Lake(fs=pafs.LocalFileSystem(), base=str(root), uri=str(root)), duckdb.connect()
    )
    symbol = "BB"
    bars, _ = reader.bars(symbol, MINUTE_NS, DAY0_NS, DAY0_NS + 86_400 * 10**9)
    busiest = max(bars, key=lambda b: b["tick_count"])
    before = DeltaTable(str(root / "ticks")).version()
    lake_maintenance.compact_day(feed.lake, "ticks", utc_date(DAY0_NS))

    seen = spark_read(home, root / "ticks", symbol, busiest["start_ns"], before)

    files = DeltaTable(str(root / "ticks")).file_uris()
    duck_rows = duckdb.connect().execute("select count(*) from read_parquet($f)", {"f": files})
    assert seen["rows"] == seen["distinct_offsets"] == feed.offset == duck_rows.fetchone()[0]  # type: ignore[index]
    assert seen["rows_at_version"] == feed.offset  # the version before the compaction
    assert seen["dates"] == reader.dates("ticks")
    bar = seen["bar"]
    assert bar["tick_count"] == busiest["tick_count"] > 0
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
        busiest["open"], busiest["high"], busiest["low"], busiest["close"],
    )  # fmt: skip
    assert bar["volume"] == pytest.approx(busiest["volume"])
