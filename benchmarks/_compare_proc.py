"""Process groups seen through ``/proc``, the machine's benchmark lock, RLIMIT_NOFILE.

For ``bench_compare.py``: VmRSS and CPU time summed over a server's process
group, waiting until servers are idle, a background sampler of peak RSS and open
descriptors, and holding ``/tmp/polyroute-bench.lock`` while measuring.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _proc_stat(pid: str) -> tuple[int, float] | None:
    """(process group, CPU seconds) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return int(fields[2]), ticks / os.sysconf("SC_CLK_TCK")


def group_pids(pgid: int) -> list[str]:
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            stat = _proc_stat(pid)
            if stat is not None and stat[0] == pgid:
                pids.append(pid)
    return pids


def _rss_kib(pid: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class GroupUsage:
    rss_kib: int
    cpu_s: float
    procs: int

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


def group_usage(pgid: int) -> GroupUsage:
    """VmRSS and CPU time summed over every process of the group (``/proc``)."""
    pids = group_pids(pgid)
    cpu = sum(stat[1] for pid in pids if (stat := _proc_stat(pid)) is not None)
    return GroupUsage(sum(_rss_kib(pid) for pid in pids), cpu, len(pids))


def _fd_count(pid: str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _run_ns(pids: list[str]) -> int:
    """CPU time (ns, every thread) of ``pids`` so far, from ``/proc/PID/task/TID/schedstat``."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


def wait_quiet(pids: list[str], quiet_s: float, cap_s: float = 0.025) -> None:
    """Return once ``pids`` have used no CPU for ``quiet_s`` (at most ``cap_s``), polling.

    Polling (not sleeping) keeps this process on a core, so the next request does
    not pay for waking an idle machine; it only waits out work a server does after
    its answer (LiteLLM: up to several ms of CPU per request).
    """
    if quiet_s <= 0:
        return
    start = time.perf_counter()
    last, changed = _run_ns(pids), start
    while (now := time.perf_counter()) - start < cap_s:
        ns = _run_ns(pids)
        if ns != last:
            last, changed = ns, now
        elif now - changed >= quiet_s:
            return


class PeakSampler:
    """A background thread: peak RSS and open fds of some process groups, every ``interval`` s."""

    def __init__(self, groups: dict[str, int], interval: float = 0.25) -> None:
        self.pids = {name: group_pids(pgid) for name, pgid in groups.items()}
        self.peak_rss_kib: Counter[str] = Counter()
        self.peak_fds: Counter[str] = Counter()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pids in self.pids.items():
                rss = sum(_rss_kib(p) for p in pids)
                fds = sum(_fd_count(p) for p in pids)
                self.peak_rss_kib[name] = max(self.peak_rss_kib[name], rss)
                self.peak_fds[name] = max(self.peak_fds[name], fds)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def bench_lock(path: Path, wait_s: float) -> Iterator[str]:
    """Hold the machine's benchmark lock; yields how it is held.

    Under ``flock PATH python ...`` the lock's descriptor is inherited and already
    held: nothing to do.  Otherwise take it here, waiting at most ``wait_s``.
    """
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                yield f"held by the caller (`flock {path}`)"
                return
    with path.open("a") as handle:
        deadline = time.monotonic() + wait_s
        for attempt in range(int(wait_s) + 2):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{path} still held after {wait_s:.0f} s; try later") from None
                if attempt == 0:
                    print(f"waiting for {path} (another benchmark is running) ...", flush=True)
                time.sleep(1.0)
        try:
            yield f"taken by the harness ({path})"
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)
