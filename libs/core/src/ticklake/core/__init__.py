"""ticklake's shared library.

Everything two services must agree on lives here and only here: the tick
contract (:mod:`ticklake.core.tick`), topic names and headers
(:mod:`ticklake.core.topics`), Redis keys (:mod:`ticklake.core.redis_keys`),
the Parquet lake layout (:mod:`ticklake.core.lake_layout`) and the settings
fields shared by every service (:mod:`ticklake.core.settings`).
"""
