"""``ticklake-producer``: simulate a market feed or replay a file into Kafka.

::

    ticklake-producer simulate --rate 5000 --symbols AAPL,MSFT --duration 60
    ticklake-producer simulate --count 100000 --seed 7 --to-parquet ticks.parquet
    ticklake-producer replay ticks.parquet --speed 10
    ticklake-producer serve                      # everything from TICKLAKE_* env vars

Every flag overrides the matching ``TICKLAKE_*`` setting
(:class:`~ticklake.producer.settings.ProducerSettings`). Exit codes: 0 done,
1 some ticks were not delivered, 2 bad input or settings, 3 Kafka unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ticklake.producer.replay import ReplayInputError
from ticklake.producer.service import (
    BrokerUnavailableError,
    ProducerService,
    ReplayFeed,
    RunResult,
    SimulateFeed,
)
from ticklake.producer.settings import ProducerSettings

EXIT_OK = 0
EXIT_SEND_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BROKER_UNAVAILABLE = 3


def _kafka_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Kafka")
    g.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers", help="host:port[,...]")
    g.add_argument("--topic", dest="ticks_topic", help="ticks topic (default market.ticks)")
    g.add_argument("--dead-letter-topic", dest="dead_letter_topic")
    g.add_argument(
        "--partitions", dest="topic_partitions", type=int, help="when creating the topic"
    )
    g.add_argument("--replication-factor", dest="topic_replication_factor", type=int)
    g.add_argument("--compression", choices=["zstd", "lz4", "gzip", "snappy", "none"])
    g.add_argument("--max-batch-bytes", dest="max_batch_bytes", type=int)
    g.add_argument("--connect-retry-max", dest="connect_retry_max_s", type=float, metavar="SECONDS")
    g = p.add_argument_group("service")
    g.add_argument(
        "--serve-http",
        action="store_true",
        help="also serve /healthz and /metrics (port from --http-port or TICKLAKE_HTTP_PORT)",
    )
    g.add_argument("--http-port", dest="http_port", type=int)
    g.add_argument("--http-host", dest="http_host")
    g.add_argument("--progress-interval", dest="progress_interval_s", type=float, metavar="SECONDS")
    g.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    g.add_argument("--log-level", dest="log_level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticklake-producer", description="Publish market ticks to Kafka."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="publish a simulated market feed")
    sim.add_argument(
        "--rate", dest="feed_rate", type=float, help="ticks per second, all symbols (default 1000)"
    )
    sim.add_argument(
        "--as-fast-as-possible", action="store_true", help="no pacing: send as fast as Kafka takes"
    )
    sim.add_argument(
        "--symbols",
        dest="feed_symbols",
        help="comma-separated tickers (default: 10 large US stocks)",
    )
    sim.add_argument("--duration", dest="feed_duration_s", type=float, metavar="SECONDS")
    sim.add_argument("--count", dest="feed_count", type=int, help="stop after this many ticks")
    sim.add_argument("--seed", dest="feed_seed", type=int)
    sim.add_argument(
        "--start-ns", type=int, help="feed time of the first tick window (UTC ns; default now)"
    )
    sim.add_argument("--drift", dest="sim_drift", type=float, help="annual drift (fraction)")
    sim.add_argument(
        "--volatility", dest="sim_volatility", type=float, help="annual volatility (fraction)"
    )
    sim.add_argument(
        "--correlation", dest="sim_correlation", type=float, help="pairwise return correlation"
    )
    sim.add_argument("--spread-bps", dest="sim_spread_bps", type=float)
    sim.add_argument("--burst-every", dest="feed_burst_every_s", type=float, metavar="SECONDS")
    sim.add_argument(
        "--burst-duration", dest="feed_burst_duration_s", type=float, metavar="SECONDS"
    )
    sim.add_argument("--burst-multiplier", dest="feed_burst_multiplier", type=float)
    sim.add_argument("--slice-ms", dest="feed_slice_ms", type=float, help="pacing granularity")
    out = sim.add_mutually_exclusive_group()
    out.add_argument("--to-parquet", type=Path, metavar="FILE", help="record to Parquet, not Kafka")
    out.add_argument("--to-csv", type=Path, metavar="FILE", help="record to CSV, not Kafka")
    _kafka_options(sim)

    rep = sub.add_parser("replay", help="publish ticks from a CSV or Parquet file (or folder)")
    rep.add_argument("file", type=Path)
    rep.add_argument("--speed", type=float, help="1 = original pace, 10 = 10x faster, 0 = unpaced")
    rep.add_argument("--as-fast-as-possible", action="store_true", help="same as --speed 0")
    rep.add_argument(
        "--on-bad-row",
        choices=["skip", "fail"],
        dest="replay_on_bad_row",
        help="skip (and report) malformed rows (default), or stop at the first one",
    )
    _kafka_options(rep)

    serve = sub.add_parser(
        "serve", help="service mode: feed from TICKLAKE_FEED_MODE etc., /healthz and /metrics on"
    )
    serve.add_argument("--log-level", dest="log_level")
    return parser


_NOT_SETTINGS = {
    "command",
    "as_fast_as_possible",
    "to_parquet",
    "to_csv",
    "serve_http",
    "quiet",
    "file",
    "start_ns",
    "speed",
}


def settings_from_args(args: argparse.Namespace) -> ProducerSettings:
    """Environment settings, overridden by the flags that were given."""
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS and v is not None
    }
    if args.command == "replay":
        overrides["feed_mode"] = "replay"
        overrides["replay_file"] = str(args.file)
        if args.speed is not None:
            overrides["replay_speed"] = args.speed
    elif args.command == "simulate":
        overrides["feed_mode"] = "simulate"
    return ProducerSettings(**overrides)


def feed_from(args: argparse.Namespace, settings: ProducerSettings) -> SimulateFeed | ReplayFeed:
    if settings.feed_mode == "replay":
        assert settings.replay_file is not None
        speed = 0.0 if getattr(args, "as_fast_as_possible", False) else settings.replay_speed
        return ReplayFeed(Path(settings.replay_file), speed, settings.replay_on_bad_row)
    record_to = getattr(args, "to_parquet", None) or getattr(args, "to_csv", None)
    return SimulateFeed(
        paced=not getattr(args, "as_fast_as_possible", False),
        start_ns=getattr(args, "start_ns", None),
        record_to=record_to,
    )


def exit_code(result: RunResult) -> int:
    lost = result.failed or result.unconfirmed or result.not_sent
    return EXIT_SEND_FAILED if lost else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        feed = feed_from(args, settings)
    except (ValidationError, ValueError) as e:
        print(f"ticklake-producer: invalid settings: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    serving = args.command == "serve" or getattr(args, "serve_http", False)
    quiet = getattr(args, "quiet", False)
    # The CLI prints progress to stderr; the service logs it (one line per interval).
    progress_out = None if (args.command == "serve" or quiet) else sys.stderr
    service = ProducerService(
        settings, serve_http=serving, progress_out=progress_out, show_progress=not quiet
    )
    try:
        result = asyncio.run(service.run(feed))
    except ReplayInputError as e:
        print(f"ticklake-producer: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as e:  # simulation parameters the market model rejects
        print(f"ticklake-producer: invalid settings: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokerUnavailableError as e:
        print(f"ticklake-producer: {e}", file=sys.stderr)
        return EXIT_BROKER_UNAVAILABLE
    if isinstance(feed, SimulateFeed) and feed.record_to is not None:
        summary = f"{result.generated:,} ticks written to {feed.record_to}"
    else:
        summary = (
            f"{result.acked:,} ticks sent, {result.failed:,} failed, "
            f"{result.unconfirmed:,} unconfirmed, {result.not_sent:,} not sent, "
            f"{result.bad_rows:,} bad rows"
        )
    print(f"ticklake-producer: {summary} in {result.elapsed_s:.1f}s", file=sys.stderr)
    return exit_code(result)


if __name__ == "__main__":
    sys.exit(main())
