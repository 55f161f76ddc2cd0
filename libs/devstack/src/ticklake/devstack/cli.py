"""``ticklake-stack``: the local stack and the whole pipeline, without Docker.

* ``ticklake-stack up``      start Kafka, Redis (and Prometheus) in the background
* ``ticklake-stack status``  what runs, where
* ``ticklake-stack down``    stop what ``up`` started
* ``ticklake-stack run``     stack + producer + ingest + query API in the foreground,
                             a live progress line, everything stopped on Ctrl-C
                             (``make run``)
* ``ticklake-stack cluster up|down|status``  a real one-node Kubernetes cluster
                             (``docs/testing.md``)
* ``ticklake-stack images build|list``  the container images, with podman
                             (``make images``, docs/images.md)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from ticklake.devstack import images, paths, ports, process
from ticklake.devstack.cluster import command as cluster_command
from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.pipeline import Pipeline, PipelineOptions
from ticklake.devstack.prometheus import PrometheusServer, prometheus_binary, render_scrape_config
from ticklake.devstack.redis import RedisServer

DEFAULT_KAFKA_PORT = 9092
DEFAULT_REDIS_PORT = 6379
DEFAULT_PROMETHEUS_PORT = 9090


def port_or_free(preferred: int) -> int:
    """``preferred`` when nothing listens there, else any free loopback port."""
    return preferred if not ports.port_open(preferred) else ports.free_port()


def _state_file() -> Path:
    return paths.stack_dir() / "stack" / "state.json"


def cmd_up(args: argparse.Namespace) -> int:
    state_file = _state_file()
    if state_file.exists():
        previous = json.loads(state_file.read_text())
        if any(process.pid_alive(p) for p in previous.get("pids", {}).values()):
            print("stack already up; `ticklake-stack status` shows it")
            return 0
    base = paths.stack_dir() / "stack"
    state: dict[str, object] = {"pids": {}}
    pids: dict[str, int] = {}
    external = os.environ.get("TICKLAKE_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        state["kafka"] = external
        print(f"kafka      external {external} (TICKLAKE_KAFKA_BOOTSTRAP_SERVERS)")
    else:
        broker = KafkaBroker(base / "kafka", port_or_free(DEFAULT_KAFKA_PORT), owned=False,
                             default_partitions=args.partitions)  # fmt: skip
        print("kafka      starting ...", flush=True)
        broker.start()
        pids["kafka"] = broker.pid or 0
        state["kafka"] = broker.bootstrap
        print(f"kafka      {broker.bootstrap}")
    redis = RedisServer(base / "redis", port_or_free(DEFAULT_REDIS_PORT),
                        password=args.redis_password, owned=False)  # fmt: skip
    redis.start()
    pids["redis"] = redis.pid or 0
    state["redis"] = redis.url
    state["redis_password"] = redis.password
    print(f"redis      {redis.url} (password in {state_file})")
    if prometheus_binary():
        prometheus_port = port_or_free(DEFAULT_PROMETHEUS_PORT)
        config = render_scrape_config(
            prometheus_port=prometheus_port, producer_port=8001, ingest_port=8002, query_port=8000
        )
        prometheus = PrometheusServer(base / "prometheus", config, prometheus_port, owned=False)
        prometheus.start()
        pids["prometheus"] = prometheus.pid or 0
        state["prometheus"] = prometheus.url
        print(f"prometheus {prometheus.url} (scrapes the services on 8000-8002)")
    state["pids"] = pids
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2))
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    state_file = _state_file()
    if not state_file.exists():
        print("stack is down")
        return 1
    state = json.loads(state_file.read_text())
    up = True
    for name, pid in state.get("pids", {}).items():
        alive = process.pid_alive(pid)
        up &= alive
        where = state.get(name, "")
        print(f"{name:<11}{'up' if alive else 'DOWN':<6}pid {pid:<8}{where}")
    return 0 if up else 1


def cmd_down(_: argparse.Namespace) -> int:
    state_file = _state_file()
    if not state_file.exists():
        print("stack is down")
        return 0
    state = json.loads(state_file.read_text())
    for name, pid in state.get("pids", {}).items():
        if process.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while process.pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if process.pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        print(f"{name:<11}stopped")
    state_file.unlink()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # A secure stack keeps its own folder: its Kafka holds users a plain one lacks.
    default = "run-secure" if args.secure else "run"
    base = Path(args.data_dir) if args.data_dir else paths.stack_dir() / default
    if args.fresh and base.exists():
        shutil.rmtree(base)
    options = PipelineOptions(
        data_dir=base,
        rate=args.rate,
        symbols=args.symbols,
        partitions=args.partitions,
        duration=args.duration,
        kafka_port=port_or_free(DEFAULT_KAFKA_PORT),
        redis_port=port_or_free(DEFAULT_REDIS_PORT),
        query_port=port_or_free(8000),
        producer_port=port_or_free(8001),
        ingest_port=port_or_free(8002),
        external_kafka=os.environ.get("TICKLAKE_KAFKA_BOOTSTRAP_SERVERS"),
        secure=args.secure,
    )
    prometheus: PrometheusServer | None = None
    pipeline = Pipeline(options)
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        try:
            pipeline.start()
        except RuntimeError as e:  # a folder that cannot work, a server that did not start
            print(f"ticklake-stack run: {e}", file=sys.stderr, flush=True)
            return 2
        if prometheus_binary() and not args.no_prometheus:
            prometheus_port = port_or_free(DEFAULT_PROMETHEUS_PORT)
            prometheus = PrometheusServer(
                base / "prometheus",
                render_scrape_config(
                    prometheus_port=prometheus_port,
                    producer_port=options.producer_port,
                    ingest_port=options.ingest_port,
                    query_port=options.query_port,
                ),
                prometheus_port,
            )
            prometheus.start()
        print(pipeline.where_to_look(prometheus.url if prometheus else None), flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop_requested and (deadline is None or time.monotonic() < deadline):
            failed = pipeline.failed_services()
            if failed:
                print(f"\nstopping: {', '.join(failed)} exited; logs in {base}/logs", flush=True)
                return 1
            print("\r" + pipeline.progress_line(), end="", flush=True)
            time.sleep(1.0)
        print("\nstopping ...", flush=True)
        return 0
    finally:
        if prometheus:
            prometheus.stop()
        pipeline.stop()
        print("stopped cleanly", flush=True)


def cmd_images_build(args: argparse.Namespace) -> int:
    built = images.build(args.names or None, tag=args.tag)
    for image in built:
        how = "cached" if image.cached else f"built in {image.seconds:.0f} s"
        print(f"{image.ref:<52}{image.size_bytes / 1e6:>8.0f} MB  {how}")
    return 0


def cmd_images_list(_: argparse.Namespace) -> int:
    for ref, size, created in images.list_images():
        print(f"{ref:<52}{size / 1e6:>8.0f} MB  {created}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="ticklake-stack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Kafka and Redis in the background")
    up.add_argument("--partitions", type=int, default=4, help="default partitions per topic")
    up.add_argument("--redis-password", default="ticklake-dev", help="Redis password")
    up.set_defaults(func=cmd_up)
    sub.add_parser("status", help="show what runs").set_defaults(func=cmd_status)
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_down)
    run = sub.add_parser("run", help="the whole pipeline in the foreground (Ctrl-C stops)")
    run.add_argument("--rate", type=int, default=2000, help="simulated ticks/s")
    run.add_argument(
        "--symbols", default=None, help="comma-separated symbols (default: the producer's)"
    )
    run.add_argument("--partitions", type=int, default=4, help="partitions of the ticks topic")
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    run.add_argument("--data-dir", default=None, help="where data and logs go (.ticklake/run)")
    run.add_argument("--fresh", action="store_true", help="delete earlier data first")
    run.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    run.add_argument("--secure", action="store_true",
                     help="Kafka SASL_SSL and Redis TLS with a user per service, API keys on "
                          "(docs/security.md); data in .ticklake/run-secure")  # fmt: skip
    run.set_defaults(func=cmd_run)
    cluster_command.add_subcommand(sub)
    images_parser = sub.add_parser("images", help="build or list the container images (podman)")
    images_sub = images_parser.add_subparsers(dest="images_command", required=True)
    images_build = images_sub.add_parser("build", help="build images whose inputs changed")
    images_build.add_argument("names", nargs="*", help="producer, ingest, query-api, operator, "
                              "kafka, redis (default: all)")  # fmt: skip
    images_build.add_argument("--tag", default=None, help="tag of the service images "
                              "(default: a hash of their inputs)")  # fmt: skip
    images_build.set_defaults(func=cmd_images_build)
    images_sub.add_parser("list", help="ticklake images in podman's storage").set_defaults(
        func=cmd_images_list
    )
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
