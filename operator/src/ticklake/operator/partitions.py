"""Which partition, and so which ingest replica, owns a symbol.

The producer keys every tick with its symbol (``ticklake.core.topics.tick_key``)
and Kafka's default partitioner maps a key to a partition with
``toPositive(murmur2(key)) % numPartitions`` (the Java client's
``Utils.murmur2``; aiokafka and librdkafka's ``murmur2_random`` do the same).
This module implements that mapping so a person can ask "who handles AAPL?"
without producing a message.

Partitions are spread over replicas by the consumer group's assignor, which the
operator does not control. The owner computed here assumes the range assignor
over one topic (the default of the Java and aiokafka consumers): with ``P``
partitions and ``R`` consumers, the first ``P % R`` consumers get
``P // R + 1`` consecutive partitions and the rest ``P // R``. With
``partitionsPerReplica`` = K and R = P / K that is exactly K each.
"""

from __future__ import annotations

from typing import Final

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK32: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data`` as an unsigned int (0 .. 2**32-1).

    Java computes in signed 32-bit ints; every step here is masked to 32 bits,
    which gives the same bit pattern.
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = (h * _M) & _MASK32
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null key."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    # toPositive: clear the sign bit (not abs(), which differs for MIN_VALUE).
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for_symbol(symbol: str, partitions: int) -> int:
    """The partition of a symbol's ticks (key = the symbol's UTF-8 bytes)."""
    return partition_for_key(symbol.encode(), partitions)


def owner_replica(partition: int, partitions: int, replicas: int) -> int:
    """Index (0-based) of the consumer that the range assignor gives ``partition``.

    Consumers are ordered by member id, which Kubernetes does not tie to the
    pod name, so the index says "the n-th consumer", not a pod.
    """
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} not in 0..{partitions - 1}")
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    active = min(replicas, partitions)
    base, extra = divmod(partitions, active)
    # The first `extra` consumers hold base+1 partitions each.
    boundary = extra * (base + 1)
    if partition < boundary:
        return partition // (base + 1)
    return extra + (partition - boundary) // base
