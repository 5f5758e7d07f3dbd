"""What the numbers were measured on, and how busy the machine was with other work at the time."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUSY = 0.25  # share of all CPUs used by other processes above which a measurement is flagged


def tree_cpu(pid: int) -> float:
    """User + system seconds of `pid` and its live descendants, each with its reaped children's."""
    ticks = sum(int(value) for _, fields in _tree(pid) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, timeout: float = 30.0, window: float = 0.2) -> float:
    """Wait (at most `timeout` s) until `pid`'s process tree uses under a tenth of a CPU over `window` s: work a run
    left behind (an exporter's backlog) then does not fall into the next run. Answers the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = tree_cpu(pid)
        time.sleep(window)
        if tree_cpu(pid) - before < window / 10:
            break
    return time.monotonic() - started


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` and its live descendants runs on `cpus` only (threads they start later inherit it)."""
    for member, _ in _tree(pid):
        for task in Path(f"/proc/{member}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(task.name), cpus)


def _tree(pid: int) -> list[tuple[int, list[str]]]:
    """`pid` and its live descendants, each with its /proc stat fields after the name."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        stats[int(entry.name)] = fields
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        if current in stats:
            found.append((current, stats[current]))
        stack.extend(children.get(current, []))
    return found


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(interval: float = 0.5) -> float:
    """Share of all CPUs busy over `interval` (call it while none of the benchmark's own load runs)."""
    try:
        busy, total = _cpu_times()
        time.sleep(interval)
        busy_after, total_after = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return (busy_after - busy) / max(total_after - total, 1)


def settle(limit: float) -> float:
    """Wait (at most `limit` seconds) for other work to drop below BUSY; return the last busy share seen."""
    deadline = time.monotonic() + limit
    share = busy_share()
    while share > BUSY and time.monotonic() < deadline:
        share = busy_share(1.0)
    return share


def description() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: nproc {len(os.sched_getaffinity(0))}, {cpu}, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
    ]


def git_state() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{' + uncommitted changes in src/' if dirty else ''}"
