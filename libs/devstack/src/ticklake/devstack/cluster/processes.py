"""The cluster's long-lived processes: started detached, found again by pid file.

``cluster up`` returns while etcd, the API server, containerd and the kubelet
keep running, so each one's pid (with its start time, which tells a reused pid
apart) is written to ``run/pids/<name>.json``; ``down`` and ``status`` (other
processes, maybe after a crash) read them back. Each runs in its own process
group (``start_new_session``), which ``stop`` signals as a whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from ticklake.devstack import process
from ticklake.devstack.cluster import host
from ticklake.devstack.cluster.layout import ClusterLayout


def start(
    layout: ClusterLayout, name: str, argv: Sequence[str], *, netns: str | None = None
) -> int:
    """Start ``argv`` (inside ``netns`` when given) detached; record and return its pid."""
    if netns is not None:
        # nsenter switches only the network namespace: the kubelet's volume
        # mounts must stay visible to containerd (`ip netns exec` would also
        # give each a private mount namespace).
        argv = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]
    env = {"PATH": f"{os.environ.get('PATH', '')}:{host.SYSTEM_PATH}"}
    proc = process.spawn(argv, layout.logs / f"{name}.log", env=env, owned=False)
    layout.pids.mkdir(parents=True, exist_ok=True)
    record = {"pid": proc.pid, "start_time": host.process_start_time(proc.pid), "argv": list(argv)}
    (layout.pids / f"{name}.json").write_text(json.dumps(record))
    return proc.pid


def running(layout: ClusterLayout, name: str) -> int | None:
    """The pid of ``name`` if the process its pid file names still runs."""
    try:
        record = json.loads((layout.pids / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    pid = int(record["pid"])
    started = host.process_start_time(pid)
    if started is None or started != record.get("start_time"):
        return None
    if host.wait_gone([pid], 0) == set():
        return None  # a zombie: exited, not yet reaped
    return pid


def stop(layout: ClusterLayout, name: str, timeout_s: float = 20.0) -> None:
    """SIGTERM ``name``'s process group, SIGKILL what is left after ``timeout_s``. Idempotent."""
    pid = running(layout, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        if host.wait_gone([pid], timeout_s):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            host.wait_gone([pid], 10)
    (layout.pids / f"{name}.json").unlink(missing_ok=True)


def log_tail(layout: ClusterLayout, name: str, chars: int = 3000) -> str:
    log = layout.logs / f"{name}.log"
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def log_path(layout: ClusterLayout, name: str) -> Path:
    return layout.logs / f"{name}.log"
