"""ticklake query API: latest ticks, history, bars, as-of and live streams.

Data flows in from two places ingest writes: the Redis hot cache (latest hash,
recent-ticks tail, pub/sub channel; :mod:`ticklake.query.redis_reader`,
:mod:`ticklake.query.stream_hub`) and the Parquet lake read through DuckDB
(:mod:`ticklake.query.lake_reader`). Pure pieces (parameter parsing, cursors,
merging, bar maths, output formats) are plain modules; ``api/`` is the thin
FastAPI glue and ``cli.py`` the command line.
"""
