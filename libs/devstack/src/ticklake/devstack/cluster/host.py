"""The host's side of the cluster: what is there, what we change, how it is undone.

Everything here either reads the host (addresses, routes, mounts, cgroups) or
changes it in one undoable step that the cluster's state file records first.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
"""Global sysctls the kubelet sets at start (its "kernel tunables"): saved before
it starts, restored at ``down``."""

CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostError(RuntimeError):
    """A host command failed; the message names the command and its output."""


def run(argv: Sequence[str], *, check: bool = True, input: bytes | None = None) -> str:
    """Run a host tool; raise :class:`HostError` with its stderr if it fails."""
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}"}
    proc = subprocess.run(list(argv), capture_output=True, input=input, env=env, check=False)
    if check and proc.returncode != 0:
        raise HostError(
            f"`{' '.join(argv)}` failed (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return proc.stdout.decode(errors="replace")


# --- what is there ------------------------------------------------------------


def ipv4_addresses() -> list[tuple[str, ipaddress.IPv4Network]]:
    out = json.loads(run(["ip", "-j", "-4", "addr", "show"]) or "[]")
    return [
        (link["ifname"], ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
        for link in out
        for a in link.get("addr_info", [])
    ]


def ipv4_routes() -> list[ipaddress.IPv4Network]:
    out = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]")
    routes = []
    for r in out:
        dst = r.get("dst", "")
        if dst in ("default", ""):
            continue
        with contextlib.suppress(ValueError):
            routes.append(ipaddress.IPv4Network(dst, strict=False))
    return routes


def link_names() -> list[str]:
    return [link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"]) or "[]")]


def netns_names() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def ports_in_use(address: str, ports: Iterable[int]) -> list[int]:
    """The ``ports`` something already listens on (or could not be bound) at ``address``."""
    used = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError:
                used.append(port)
    return used


# --- sysctls ------------------------------------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str]) -> dict[str, str]:
    return {n: _sysctl_path(n).read_text().strip() for n in names if _sysctl_path(n).exists()}


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    """Write back ``saved``; return the names that could not be written."""
    failed = []
    for name, value in saved.items():
        try:
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
        except OSError:
            failed.append(name)
    return failed


# --- mounts -------------------------------------------------------------------


def mounts_under(root: Path, mountinfo: str | None = None) -> list[Path]:
    """Mount points at or below ``root``, deepest first (the order to unmount them)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    prefix = str(root).rstrip("/")
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        # mountinfo escapes spaces and the like as octal (\040).
        point = fields[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: (len(p.parts), str(p)), reverse=True)


def unmount_all(root: Path) -> list[Path]:
    """Lazily unmount everything below ``root``; return what was unmounted."""
    done = []
    for _ in range(5):  # a mount can hide another one at the same point
        points = mounts_under(root)
        if not points:
            break
        for point in points:
            run(["umount", "-l", str(point)], check=False)
            done.append(point)
    return done


# --- cgroups ------------------------------------------------------------------


def kubepods_cgroups() -> list[Path]:
    """The kubelet's ``kubepods`` cgroup in each v1 hierarchy that has one."""
    if not CGROUP_ROOT.is_dir():
        return []
    return [d / KUBEPODS for d in CGROUP_ROOT.iterdir() if (d / KUBEPODS).is_dir()]


def _cgroup_dirs(root: Path) -> list[Path]:
    """``root`` and every cgroup below it. The kubelet and containerd remove
    cgroups while this walks (seen during ``down``: a pod's folder vanished
    between listing and reading), so a folder that is gone is skipped."""
    found: list[Path] = []
    for dirpath, _, _ in os.walk(root, onerror=lambda _: None):
        found.append(Path(dirpath))
    return found


def cgroup_pids(root: Path) -> set[int]:
    pids: set[int] = set()
    for cgroup in _cgroup_dirs(root):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in (cgroup / "cgroup.procs").read_text().split())
    return pids


def remove_cgroup_tree(root: Path) -> list[Path]:
    """rmdir ``root`` and its children, deepest first; return what could not be removed."""
    left = []
    for d in sorted(_cgroup_dirs(root), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except FileNotFoundError:
            pass  # removed meanwhile by containerd or the kubelet
        except OSError:
            left.append(d)
    return left


# --- processes ----------------------------------------------------------------


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; it ends at the last ')'.
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def netns_pids(netns: str) -> set[int]:
    out = run(["ip", "netns", "pids", netns], check=False)
    return {int(p) for p in out.split() if p.isdigit()}


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout_s: float) -> set[int]:
    """Wait until none of ``pids`` exists; return the ones still there."""
    left = set(pids)
    deadline = time.monotonic() + timeout_s
    while left and time.monotonic() < deadline:
        left = {p for p in left if Path(f"/proc/{p}").exists() and not _zombie(p)}
        if left:
            time.sleep(0.1)
    return left


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"
