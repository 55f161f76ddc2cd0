"""ticklake's producer: market ticks into Kafka.

Data flows top to bottom::

    simulator.py   seeded correlated-GBM market, one window of ticks at a time (pure)
    pacing.py      how many ticks are due when; replay offsets (pure)
    replay.py      CSV/Parquet rows -> contract-valid ticks, bad rows with file:line
    runner.py      the feed loops: paced simulation and replay into a sink
    publisher.py   per-partition record batches -> idempotent aiokafka producer
    recording.py   simulate to a Parquet/CSV file instead of Kafka
    service.py     one process: connect with backoff, run a feed, SIGTERM -> flush
    http_api.py    /healthz and /metrics
    metrics.py     the Prometheus metrics
    settings.py    ProducerSettings (TICKLAKE_* environment)
    cli.py         ticklake-producer simulate | replay | serve

See docs/producer.md.
"""
