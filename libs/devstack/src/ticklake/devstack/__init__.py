"""ticklake's local stack: real Kafka (KRaft), Redis and Prometheus on loopback, no Docker.

Used three ways: ``ticklake-stack up|down|status`` for a long-lived dev stack,
``ticklake-stack run`` (``make run``) for the whole pipeline in the foreground,
and the test fixtures in ``tests/conftest.py``, which start private instances
on free ports so tests never collide with a stack that is already running.
"""
