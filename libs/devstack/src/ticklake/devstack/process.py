"""Child processes that die with their parent and stop gracefully."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux only: the kernel sends SIGTERM to the child when the parent exits,
    # so a crashed test run never leaves a broker behind.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def spawn(
    argv: Sequence[str],
    log_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    owned: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with output to ``log_file``.

    ``owned`` ties the child's life to ours (tests, ``make run``); a detached
    ``ticklake-stack up`` passes ``owned=False`` so the servers outlive the command.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab")
    try:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if owned else None,
        )
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. Idempotent."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL at once (crash simulation). Idempotent."""
    if proc is None or proc.poll() is not None:
        return
    proc.kill()
    proc.wait(timeout=10)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
