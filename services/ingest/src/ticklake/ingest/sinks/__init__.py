"""Where processed batches go: the Parquet lake (durable) and the Redis cache (fast)."""
