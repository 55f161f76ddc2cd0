#!/usr/bin/env bash
# Spark with Delta Lake, for the test that another engine reads ticklake's tables
# (tests/ingest/test_lake_spark.py): pyspark from PyPI in its own virtualenv (it is not a
# dependency of any ticklake service) and Delta's Spark connector jars from Maven Central.
# Cached in ~/.cache/ticklake/spark-<versions>; a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")"
PYSPARK=4.2.0
DELTA_PY=4.4.1   # delta-spark on PyPI; its jars are 4.4.0 on Maven Central (pom.xml)
DELTA_JARS=4.4.0
home="${HOME}/.cache/ticklake/spark-${PYSPARK}-delta-${DELTA_JARS}"
if [[ -f "$home/ready" ]]; then
  exit 0
fi
rm -rf "$home"
mkdir -p "$home"
uv venv -q -p 3.11 "$home/venv"
VIRTUAL_ENV="$home/venv" uv pip install -q "pyspark==${PYSPARK}" "delta-spark==${DELTA_PY}"
mvn -q -B dependency:copy-dependencies -DoutputDirectory="$home/jars"
ls "$home/jars"/delta-spark_2.13-${DELTA_JARS}.jar "$home/jars"/delta-storage-${DELTA_JARS}.jar >/dev/null
touch "$home/ready"
echo "spark: $home"
