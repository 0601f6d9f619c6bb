"""The intake: a long-lived process that claims recorded orders from the database (the lease
decides who takes one, so several intakes can share a database) and runs each as one
`fulfill-order` task run inside a rotating `order-intake` flow run. SIGTERM or Ctrl-C drains:
no new claims, the orders in flight finish, exit 0. A killed intake's orders are finished by
any live intake once their lease expires (or by the sweep when none runs).
`python -m flows.intake [--concurrency N] [--poll-seconds S]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from sqlalchemy.exc import OperationalError

from flows.cli import bounded_seconds, run_command
from flows.pipeline import RETRY_SECONDS, Pipeline, run_until_stopped
from flows.reconcile import mark_crashed
from storage import saga_log
from storage.arguments import OneLineParser, whole_number
from storage.db import session_scope
from storage.errors import StorageUnavailable
from storage.settings import get_settings

logger = logging.getLogger(__name__)
UNRECORDED_RETRY_SECONDS = 1.0  # how often a taken-over run Prefect had not recorded is retried
UNRECORDED_GIVE_UP_SECONDS = 60.0  # and for how long (its events may have died with its intake)


class ClaimedOrders:
    """The intake's source: orders with work to do that nobody holds (or whose holder's lease
    expired: a dead intake's orders are taken over), leased to this intake as it takes them
    (a read-only peek first, so an idle intake never takes the write lock)."""

    def __init__(self) -> None:
        self.owner = f"intake:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = get_settings().lease_seconds
        self.unrecorded: dict[str, float] = {}  # task run id -> when to stop trying to mark it
        self.next_retry = 0.0

    def take(self, limit: int) -> list[str]:
        """Claim up to `limit` orders; none while the database cannot be reached (it is
        retried at the next look: a database restart does not stop the intake)."""
        self.mark_crashed([])
        try:
            with session_scope(readonly=True) as session:
                if not saga_log.pending_unclaimed(session, owner=self.owner):
                    return []
            with session_scope() as session:
                claims = saga_log.claim_pending(
                    session, owner=self.owner, limit=limit, lease_seconds=self.lease_seconds
                )
        except OperationalError as exc:
            logger.warning("database unreachable, looking again in %s s: %s", RETRY_SECONDS, exc)
            time.sleep(RETRY_SECONDS)
            return []
        self.mark_crashed([claim.abandoned_run for claim in claims if claim.abandoned_run])
        return [claim.order_id for claim in claims]

    def mark_crashed(self, abandoned: list[str]) -> None:
        """Mark the abandoned runs of orders just taken over Crashed, and retry (every second,
        for a minute) those Prefect had not recorded yet: under load its recorder lags."""
        now = time.monotonic()
        due = list(self.unrecorded) if now >= self.next_retry else []
        if not abandoned and not due:
            return
        still = set(mark_crashed([*abandoned, *due]))
        for run in abandoned:
            self.unrecorded.setdefault(run, now + UNRECORDED_GIVE_UP_SECONDS)
        self.unrecorded = {
            run: until for run, until in self.unrecorded.items() if run in still and until > now
        }
        self.next_retry = now + UNRECORDED_RETRY_SECONDS

    def exhausted(self) -> bool:
        return False

    def give_back(self, order_ids: list[str]) -> None:
        with session_scope() as session:
            for order_id in order_ids:
                saga_log.release_lease(session, order_id=order_id, owner=self.owner)


def intake_pipeline(concurrency: int, poll_seconds: float) -> Pipeline:
    source = ClaimedOrders()
    return Pipeline(
        source=source,
        flow_name="order-intake",
        run_name=lambda: f"intake-{os.getpid()}-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        concurrency=concurrency,
        poll_seconds=poll_seconds,
    )


@flow(name="intake-service", flow_run_name="order-intake", persist_result=False)
def order_intake(concurrency: int | None = None, poll_seconds: float | None = None) -> str:
    """The intake as a deployment run: serves orders until it is cancelled (then drains)."""
    settings = get_settings()
    pipeline = intake_pipeline(
        concurrency or settings.intake_concurrency, poll_seconds or settings.intake_poll_seconds
    )
    get_run_logger().info("intake %s serving", pipeline.source.owner)
    run_until_stopped(pipeline)
    return f"intake {pipeline.source.owner} drained"


def check_ready() -> None:
    """Fail fast (one line) unless the database and the Prefect server both answer."""
    with session_scope(readonly=True) as session:
        saga_log.pending_unclaimed(session)
    with get_client(sync_client=True) as client:
        if (error := client.api_healthcheck()) is not None:
            raise StorageUnavailable(f"the Prefect server does not answer: {error}")


def serve(args: argparse.Namespace) -> int:
    pipeline = intake_pipeline(args.concurrency, args.poll_seconds)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: pipeline.stop.set())
    check_ready()
    if args.ready_file:
        args.ready_file.touch()
    print(
        f"intake {pipeline.source.owner}: {args.concurrency} orders at a time; "
        "SIGTERM or Ctrl-C drains",
        flush=True,
    )
    run_until_stopped(pipeline)
    print(f"intake {pipeline.source.owner}: drained", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = OneLineParser(prog="python -m flows.intake", description=__doc__)
    parser.add_argument(
        "--concurrency",
        type=whole_number(256),
        default=settings.intake_concurrency,
        help="orders in flight at once (FLOWFORGE_INTAKE_CONCURRENCY)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=bounded_seconds(0.01, 5),
        default=settings.intake_poll_seconds,
        help="seconds between looks for new orders (FLOWFORGE_INTAKE_POLL_SECONDS)",
    )
    parser.add_argument(
        "--ready-file", type=Path, help="a file to create once serving (for supervisors)"
    )
    return run_command(parser, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
