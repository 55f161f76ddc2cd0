"""``ticklake-stack cluster up|install|down|status``: the one-node cluster from the command line."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ticklake.devstack import images
from ticklake.devstack.cluster import release
from ticklake.devstack.cluster.cluster import COMPONENTS, Cluster, ClusterError


def cmd_up(_: argparse.Namespace) -> int:
    cluster = Cluster()
    try:
        cluster.up()
    except ClusterError as e:
        print(f"cluster up failed: {e}")
        print(f"logs of the failed start: {cluster.layout.root / 'failed-start-logs'}")
        return 1
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    """Up (or reuse), then the images and charts/ticklake, Running and Ready."""
    if cmd_up(args) != 0:
        return 1
    cluster = Cluster()
    try:
        with tempfile.TemporaryDirectory(prefix="ticklake-install-") as tmp:
            built = release.build_and_load(cluster, Path(tmp))
            release.install(cluster, args.namespace, args.release, built, Path(tmp))
            keys, _ = release.api_key(cluster, args.namespace)
    except (ClusterError, images.ImageError) as e:
        print(f"cluster install failed: {e}")
        return 1
    print(cluster.kubectl("-n", args.namespace, "get", "pods"), end="")
    print(
        f"export KUBECONFIG={cluster.kubeconfig} PATH={cluster.bin_dir}:$PATH\n"
        f"kubectl -n {args.namespace} port-forward svc/{args.release}-ticklake-query-api "
        "18080:8000\n"
        f"export TICKLAKE_API_KEY=$(cat {keys.with_suffix('.token')})\n"
        'curl -H "Authorization: Bearer $TICKLAKE_API_KEY" http://127.0.0.1:18080/latest/AAPL'
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    Cluster().down(purge=args.purge)
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    cluster = Cluster()
    status = cluster.status()
    for name in COMPONENTS:
        pid = status.components[name]
        print(f"{name:<24}{'up' if pid else 'DOWN':<6}{f'pid {pid}' if pid else ''}")
    api = "ready" if status.apiserver_ready else "NOT READY"
    print(f"{'api server':<24}{api} {cluster.server}")
    print(f"{'node':<24}{'Ready' if status.node_ready else 'NOT READY'}")
    if status.apiserver_ready:
        print(cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False), end="")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0 if status.healthy else 1


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("cluster", help="a real one-node Kubernetes cluster (root)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("up", help="start it, or reuse a healthy one").set_defaults(func=cmd_up)
    install = actions.add_parser(
        "install",
        help="up, then build and import the images and helm install charts/ticklake "
        "(a fresh namespace with a Kafka pod and the lake on a hostPath volume)",
    )
    install.add_argument("--namespace", default="ticklake", help="(deleted first if it exists)")
    install.add_argument("--release", default="tl", help="helm release name")
    install.set_defaults(func=cmd_install)
    down = actions.add_parser("down", help="stop it and restore the host")
    down.add_argument(
        "--purge", action="store_true", help="also delete the image store and volumes"
    )
    down.set_defaults(func=cmd_down)
    actions.add_parser("status", help="what runs").set_defaults(func=cmd_status)
