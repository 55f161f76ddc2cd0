"""A test-only fault switch in the flush path of a running process (``make chaos``).

With ``TICKLAKE_FAULT_INJECTION_FILE`` unset (the default, and always in the
chart) :meth:`FaultSwitch.check` returns at once and never touches the disk.
Set, each flush looks at that file: while it exists and names a stage, the
flush raises :class:`InjectedFault` there. The fault suite
(``bench/chaos.py``) writes and removes the file to inject faults into real
processes without patching code:

* ``lake_write``: raised in place of the lake write, as an unexpected library
  error would be (not a ``LakeWriteError``): the flush task retries it, the
  partition holds and shows as stalled;
* ``flush_task``: raised by the flush task outside its retried steps, as a bug
  would be: the task dies, the process exits non-zero and its restart recovers
  from the last durable flush (and dies again while the file still says so).
"""

from __future__ import annotations

from pathlib import Path

STAGES = ("lake_write", "flush_task")


class InjectedFault(RuntimeError):
    """Raised where the fault file asks for it (never in a normal run)."""


class FaultSwitch:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def check(self, stage: str) -> None:
        if self.path is None:
            return
        try:
            wanted = self.path.read_text().split()
        except (FileNotFoundError, IsADirectoryError):
            return
        if stage in wanted:
            raise InjectedFault(f"injected fault at {stage} (fault file {self.path})")
