"""Run by Spark's Python (tools/spark/install.sh), not by pytest: read ticklake's ticks
table with Spark and Delta's own connector, print what the test compares as JSON.

    python spark_read_lake.py <ticks table> <symbol> <minute start ns> <version> <jar> ...
"""

import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

table, symbol, minute_ns, version, *jars = sys.argv[1:]
spark = (
    SparkSession.builder.master("local[1]")
    .appName("ticklake-lake-reader")
    .config("spark.jars", ",".join(jars))
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.sql.shuffle.partitions", "1")
    .config("spark.ui.enabled", "false")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
ticks = spark.read.format("delta").load(table)
start, end = int(minute_ns), int(minute_ns) + 60 * 10**9
in_bar = ticks.where(
    (F.col("symbol") == symbol) & (F.col("ts_ns") >= start) & (F.col("ts_ns") < end)
)
ordered = in_bar.orderBy("ts_ns", "kafka_offset").collect()
old = spark.read.format("delta").option("versionAsOf", int(version)).load(table)
print(
    json.dumps(
        {
            "rows": ticks.count(),
            "distinct_offsets": ticks.select("kafka_partition", "kafka_offset").distinct().count(),
            "dates": sorted(r["date"] for r in ticks.select("date").distinct().collect()),
            "bar": {
                "open": ordered[0]["price"] if ordered else None,
                "high": max((r["price"] for r in ordered), default=None),
                "low": min((r["price"] for r in ordered), default=None),
                "close": ordered[-1]["price"] if ordered else None,
                "volume": sum(r["size"] for r in ordered),
                "tick_count": len(ordered),
            },
            "rows_at_version": old.count(),
        }
    )
)
spark.stop()
