"""Long polls of order statuses: one poller per process reads the statuses of every awaited
order in one query per tick, in a worker thread, and wakes the requests whose order changed.
A waiting request holds neither a database connection nor a thread."""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from storage import saga_log
from storage.db import session_scope
from storage.errors import StorageUnavailable

TICK_SECONDS = 0.05

logger = logging.getLogger(__name__)


def read_statuses(order_ids: list[str]) -> dict[str, str]:
    """The current status of each of these orders (an order that is gone is left out)."""
    with session_scope(readonly=True) as session:
        return saga_log.order_statuses(session, order_ids=order_ids)


class StatusWatch:
    """The awaited orders of one event loop and the poller that watches them: started by the
    first waiter, it ends when nobody waits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiters: dict[str, dict[asyncio.Future[None], str]] = {}  # order → {waiter: seen}
        self._poller: asyncio.Task[None] | None = None

    async def changed(self, order_id: str, seen: str, timeout: float) -> None:
        """Return once the order's status is no longer `seen`, or after `timeout` seconds."""
        waiter = self.loop.create_future()
        self._waiters.setdefault(order_id, {})[waiter] = seen
        if self._poller is None or self._poller.done():
            self._poller = self.loop.create_task(self._poll())
        try:
            await asyncio.wait([waiter], timeout=timeout)
        finally:
            waiting = self._waiters.get(order_id, {})
            waiting.pop(waiter, None)
            if not waiting:
                self._waiters.pop(order_id, None)

    async def _poll(self) -> None:
        while self._waiters:
            await asyncio.sleep(TICK_SECONDS)
            order_ids = list(self._waiters)
            try:
                statuses = await anyio.to_thread.run_sync(read_statuses, order_ids)
            except (SQLAlchemyError, StorageUnavailable) as exc:
                # wake everyone: each answers with what it can read, or a 503
                logger.warning("could not read the awaited statuses: %s", exc)
                statuses = {}
            for order_id in order_ids:
                now = statuses.get(order_id)
                for waiter, seen in self._waiters.get(order_id, {}).items():
                    if now != seen and not waiter.done():
                        waiter.set_result(None)

    def release_all(self) -> None:
        """Wake every waiter now (the server is stopping): each answers the status as it
        stands."""
        for waiting in list(self._waiters.values()):
            for waiter in list(waiting):
                if not waiter.done():
                    waiter.set_result(None)


_watch: StatusWatch | None = None


def release_waiters() -> None:
    """From any thread: let every long poll of this process answer at once."""
    if _watch is not None and not _watch.loop.is_closed():
        _watch.loop.call_soon_threadsafe(_watch.release_all)


def status_watch() -> StatusWatch:
    """The running event loop's watch (one per process under uvicorn)."""
    global _watch
    loop = asyncio.get_running_loop()
    if _watch is None or _watch.loop is not loop:
        _watch = StatusWatch(loop)
    return _watch
