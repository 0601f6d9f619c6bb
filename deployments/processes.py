"""Process supervision, for the stack (deployments/stack.py) and the bench: a child runs in its
own session (stopped as a group) and is killed by the kernel if its supervisor is; it is waited
for until it serves, restarted after a growing pause when it exits or hangs, and stopped with
SIGTERM, then SIGKILL for whatever outlives the wait."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows.prefect_api import answers, die_with_parent

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
MAX_CRASHES = 5
CRASH_WINDOW_SECONDS = 300.0


class Stop(Exception):
    """A signal asked the supervisor to stop."""


@dataclass
class Child:
    """A process the supervisor started, and what it takes to start it again."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    argv: list[str]
    env: dict[str, str]
    started_at: float = field(default_factory=time.time)
    ready: Callable[[Child], bool] | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None  # monotonic: when this crashed child starts again
    waiting_since: float | None = None  # monotonic: restarted then, not serving yet


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (read from /proc; empty where there is none)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children[int(stat.read_text().rsplit(")", 1)[1].split()[1])].append(
                int(stat.parent.name)
            )
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def start(name: str, url: str, argv: list[str], env: dict[str, str]) -> Child:
    """Start a child in its own process group, so it and everything it starts can be stopped."""
    return Child(name, url, _spawn(argv, env), argv, env)


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """In its own session (stopped as a group), and killed by the kernel if the supervisor
    is."""
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, start_new_session=True, preexec_fn=die_with_parent
    )


def bring_up(
    children: list[Child],
    name: str,
    url: str,
    argv: list[str],
    env: dict[str, str],
    ready: Callable[[Child], bool],
) -> Child:
    """Start a child and wait until it serves; `supervise` restarts it if it crashes."""
    child = start(name, url, argv, env)
    child.ready = ready
    children.append(child)
    wait_for(child, lambda: ready(child), name)
    return child


def wait_ready(child: Child, check_url: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Poll `check_url` until it answers 200; fail if the child dies or time runs out."""
    wait_for(child, lambda: answers(check_url), check_url, timeout)


def file_touched(path: Path) -> Callable[[Child], bool]:
    """Ready when the child (re)created `path` after it started."""
    return lambda child: path.exists() and path.stat().st_mtime >= child.started_at - 1


def wait_for(
    child: Child, ready: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT_SECONDS
) -> None:
    """Poll `ready()` until it is true; fail if the child dies first or time runs out (a child
    that was ready and has died since is the supervisor's to restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with code {child.process.returncode}")
        time.sleep(0.3)
    raise RuntimeError(f"{child.name} not ready after {timeout:.0f} s ({what})")


def signal_group(child: Child, signum: signal.Signals) -> None:
    """Send `signum` to the child's process group (if anything of it is left)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)


def stop(children: list[Child]) -> None:
    """SIGTERM every child's process group, newest first; SIGKILL whatever outlives the wait."""
    for child in reversed(children):
        group = child.process.pid
        doomed = descendants(group) | {group}
        signal_group(child, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(STOP_TIMEOUT_SECONDS)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while alive(doomed) and time.monotonic() < deadline:
            time.sleep(0.1)
        signal_group(child, signal.SIGKILL)
        for pid in alive(doomed):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.process.poll()


def alive(pids: set[int]) -> set[int]:
    """The pids among `pids` that are still running (zombies count as gone)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


def supervise(children: list[Child]) -> int:
    """Keep every child serving until a signal arrives (0): a child that exits is restarted
    after a growing pause while the others go on; one that crashes more than `MAX_CRASHES`
    times within `CRASH_WINDOW_SECONDS` ends the supervision (1). Each child has its own pause
    and readiness wait: the loop never waits on one."""
    while True:
        for child in children:
            if not look_after(child):
                return 1
        time.sleep(0.3)


def look_after(child: Child) -> bool:
    """One look at a child, without waiting for it: start it again when its pause is over, tell
    when it serves again, count a crash when it exits or is not ready in time. False once it
    crashed too often."""
    now = time.monotonic()
    if child.restart_at is not None:
        if now >= child.restart_at:
            signal_group(child, signal.SIGKILL)  # what the crashed one left behind
            child.process, child.started_at = _spawn(child.argv, child.env), time.time()
            child.restart_at, child.waiting_since = None, now
        return True
    if child.process.poll() is not None:
        return crashed(child, f"exited with code {child.process.returncode}")
    if child.waiting_since is None:
        return True
    if child.ready is None or child.ready(child):
        child.waiting_since = None
        print(f"{child.name} is serving again", flush=True)
    elif now - child.waiting_since > READY_TIMEOUT_SECONDS:
        signal_group(child, signal.SIGKILL)  # it hangs: nothing to stop gracefully
        child.process.wait()
        return crashed(child, f"not ready after {READY_TIMEOUT_SECONDS:.0f} s")
    return True


def crashed(child: Child, what: str) -> bool:
    """Count a crash and schedule the restart after the back-off (False: too many crashes);
    what the child left running gets the pause to exit on SIGTERM."""
    now = time.monotonic()
    child.crashes = [t for t in child.crashes if now - t < CRASH_WINDOW_SECONDS] + [now]
    child.waiting_since = None
    if len(child.crashes) > MAX_CRASHES:
        print(
            f"{child.name} {what}, {len(child.crashes)} times in "
            f"{CRASH_WINDOW_SECONDS:.0f} s: giving up",
            flush=True,
        )
        return False
    pause = BACKOFF_SECONDS[min(len(child.crashes), len(BACKOFF_SECONDS)) - 1]
    signal_group(child, signal.SIGTERM)
    child.restart_at = now + pause
    print(f"{child.name} {what}; restarting in {pause:g} s", flush=True)
    return True


def raise_stop(signum: int, _frame: object) -> None:
    """A signal handler: stop the supervision (`Stop`)."""
    raise Stop(signal.Signals(signum).name)


def port_in_use(port: int) -> bool:
    """True when something already holds `port` on 127.0.0.1."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
