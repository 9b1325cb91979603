"""What /proc says about a served process: the processes left in its session, its
resident memory, its limit on open files (Linux)."""

from __future__ import annotations

import time
from pathlib import Path

_PROC = Path("/proc")


def processes_in_session(session: int) -> list[int]:
    """Live (not zombie) processes whose session id is `session`: `serve` is started in a
    session of its own, so these are everything it started that is still running."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # Fields after the command name, which may hold spaces: state, ppid, pgrp, session.
        state, _ppid, _pgrp, sid = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(sid) == session and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def rss_bytes(pid: int) -> int:
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


def open_files_limits(pid: int) -> tuple[int, int]:
    """(soft, hard) limit on open files of a running process."""
    for line in (_PROC / str(pid) / "limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise LookupError(f"no open files limit for process {pid}")


def wait_until_rss_settles(pid: int, within: float = 30.0, step: float = 0.25) -> int:
    """Bounded wait for a process's resident memory to stop moving (two samples `step`
    apart within 4 MiB); returns it."""
    deadline = time.monotonic() + within
    last = rss_bytes(pid)
    while time.monotonic() < deadline:
        time.sleep(step)
        now = rss_bytes(pid)
        if abs(now - last) < 4 << 20:
            return now
        last = now
    return last
