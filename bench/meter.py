"""What a mode costs in CPU and memory, across every process it involves.

- Long-lived process trees (a Prefect server, the stack): `/proc/<pid>/stat` utime + stime +
  cutime + cstime summed over the tree before and after the window, so a process that starts
  and ends inside the window is counted through its parent; resident memory sampled.
- Commands the bench waits for: their `wait4` rusage (CPU and peak RSS, children included).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from deployments.processes import descendants
from flows.prefect_api import die_with_parent

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
SAMPLE_SECONDS = 0.5
IDLE_CPU_SECONDS = 0.05  # a tree that used less than this in SAMPLE_SECONDS has settled
SETTLE_LIMIT_SECONDS = 10.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Usage:
    """CPU seconds by process label, and the peak resident memory of any one process."""

    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    @property
    def total_cpu_s(self) -> float:
        return sum(self.cpu_s.values())

    def add(self, other: Usage) -> Usage:
        cpu = defaultdict(float, self.cpu_s)
        for label, seconds in other.cpu_s.items():
            cpu[label] += seconds
        return Usage(dict(cpu), max(self.peak_rss_mb, other.peak_rss_mb))


def label(argv: list[str]) -> str:
    """A short name for a command line: the module after `-m` (with its subcommand for
    prefect), else the program."""
    if "-m" in argv[:-1]:
        module, rest = argv[argv.index("-m") + 1], argv[argv.index("-m") + 2 :]
        return f"{module} {rest[0]}" if module == "prefect" and rest else module
    return Path(argv[0]).name if argv else "?"


def _proc(pid: int) -> tuple[str, float, float] | None:
    """(label, CPU seconds of it and its reaped children, resident MB), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    cpu = sum(int(value) for value in fields[11:15]) / TICKS
    return label([arg for arg in argv if arg]), cpu, rss_pages * PAGE_MB


class TreeMeter:
    """CPU and peak memory of the process trees under `roots` over a window: enter to start
    it, `finish()` to wait until the trees settle (their deferred work counts) and read it."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_memory, daemon=True)

    def _read(self) -> dict[int, tuple[str, float, float]]:
        pids = set(self.roots).union(*(descendants(root) for root in self.roots))
        return {pid: found for pid in pids if (found := _proc(pid)) is not None}

    def _sample_memory(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._note_memory(self._read())

    def _note_memory(self, sample: dict[int, tuple[str, float, float]]) -> None:
        self.peak_rss_mb = max([self.peak_rss_mb, *(rss for _, _, rss in sample.values())])

    def __enter__(self) -> TreeMeter:
        self._before = self._read()
        self._note_memory(self._before)
        self._sampler.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()

    def _settle(self) -> dict[int, tuple[str, float, float]]:
        deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
        sample = self._read()
        while time.monotonic() < deadline:
            time.sleep(SAMPLE_SECONDS)
            previous, sample = sample, self._read()
            used = sum(cpu for _, cpu, _ in sample.values())
            if used - sum(cpu for _, cpu, _ in previous.values()) < IDLE_CPU_SECONDS:
                break
        return sample

    def finish(self) -> Usage:
        after = self._settle()
        self._stop.set()
        self._note_memory(after)
        cpu: dict[str, float] = defaultdict(float)
        for pid in self._before.keys() | after.keys():
            name = (after.get(pid) or self._before[pid])[0]
            start = self._before[pid][1] if pid in self._before else 0.0
            end = after[pid][1] if pid in after else 0.0
            cpu[name] += end - start
        return Usage(dict(cpu), self.peak_rss_mb)


@dataclass
class Finished:
    """A command the bench waited for."""

    returncode: int
    stdout: str
    seconds: float
    usage: Usage


def run_measured(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> Finished:
    """Run a command to its end (stderr to `log`); its wall time, CPU and peak RSS from wait4."""
    started = time.perf_counter()
    with log.open("ab") as stderr:
        process = subprocess.Popen(  # killed by the kernel if the bench is
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        stdout = process.stdout.read().decode(errors="replace")
        _, status, rusage = os.wait4(process.pid, 0)
    finally:
        watchdog.cancel()
        if process.stdout is not None:
            process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = rusage.ru_utime + rusage.ru_stime
    usage = Usage({label(argv): cpu}, rusage.ru_maxrss / 1024)  # ru_maxrss is in KiB
    return Finished(process.returncode, stdout, time.perf_counter() - started, usage)
