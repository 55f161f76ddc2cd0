"""``ticklake-operator``: run the operator, or ask which partition owns a symbol.

ticklake-operator run
ticklake-operator which-partition AAPL --partitions 12 --partitions-per-replica 3
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ticklake.operator import partitions


def which_partition(symbol: str, n_partitions: int, per_replica: int) -> str:
    p = partitions.partition_for_symbol(symbol, n_partitions)
    replicas = -(-n_partitions // per_replica)
    owner = partitions.owner_replica(p, n_partitions, replicas)
    return (
        f"symbol={symbol} partition={p} of {n_partitions} "
        f"consumer={owner} of {replicas} (range assignor, {per_replica} partitions per replica)"
    )


def _run(args: argparse.Namespace) -> int:
    # Imported here: the handlers read settings from the environment at import,
    # and `which-partition` must work without any of it.
    import kopf

    from ticklake.operator import handlers

    s = handlers.SETTINGS
    liveness = f"http://{s.liveness_host}:{s.liveness_port}/healthz" if s.liveness_port else None
    kopf.configure(verbose=args.verbose)
    # kopf's verbose mode turns every logger to DEBUG; aiokafka's wire-level
    # lines would drown the operator's own.
    logging.getLogger("aiokafka").setLevel(logging.INFO)
    kopf.run(
        standalone=True,
        clusterwide=not s.namespaces,
        namespaces=s.namespaces,
        liveness_endpoint=liveness,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ticklake-operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator (settings from TICKLAKE_OPERATOR_*)")
    run.add_argument("-v", "--verbose", action="store_true")

    wp = sub.add_parser("which-partition", help="the partition and consumer that own a symbol")
    wp.add_argument("symbol")
    wp.add_argument("--partitions", type=int, required=True, help="partitions of the topic")
    wp.add_argument("--partitions-per-replica", type=int, default=1)

    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.partitions < 1 or args.partitions_per_replica < 1:
        parser.error("--partitions and --partitions-per-replica must be >= 1")
    print(which_partition(args.symbol, args.partitions, args.partitions_per_replica))
    return 0


if __name__ == "__main__":
    sys.exit(main())
