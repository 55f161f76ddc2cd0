"""ticklake's shared library.

Everything two services must agree on lives here and only here: the tick's fields
(:mod:`ticklake.core.tick_fields`) and its wire codec (:mod:`ticklake.core.tick`),
topic names and headers (:mod:`ticklake.core.topics`), the Redis hot cache's keys,
encodings and write script (:mod:`ticklake.core.hot_cache`), the Parquet lake layout
(:mod:`ticklake.core.lake_layout`) and the settings fields shared by every service
(:mod:`ticklake.core.settings`).
"""
