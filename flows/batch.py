"""The batch: every order of a JSONL or CSV file, fulfilled through the intake's engine (one
`fulfill-order` task run per order, bounded concurrency, rotating flow runs). The file is
streamed; a bad line is reported with its number and skipped; running a file twice charges
nobody twice (an order's id comes from the file, or is derived from its line).
`python -m flows.batch FILE [--concurrency N] [--json]`."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import socket
import stat
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from flows.cli import BadOrder, run_command, valid_order
from flows.fulfill import record_order
from flows.outcome import EXIT_CODES, ExitCode
from flows.pipeline import Pipeline, run_until_stopped
from storage import saga_log
from storage.arguments import OneLineParser, whole_number
from storage.db import session_scope
from storage.errors import OrderConflict
from storage.models import ACTIVE_STATUSES, OrderCreate, OrderStatus
from storage.settings import get_settings

MAX_REPORTED = 1000  # bad lines and unfinished orders listed in the summary (all are counted)
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
MAX_LINE = 128 * 1024  # characters of a line (CSV: a record); an order has a few hundred


class BadLine(ValueError):
    """A line that is not an order; the message says why."""


Record = tuple[int, str, dict[str, Any] | BadLine]  # (first line, raw text, fields or why not)
LINE_FIELDS = ("product_id", "quantity")  # a CSV row's line; the rest describe its order


NOT_AN_ORDER = BadLine("not an order: expected a JSON object or a CSV row")
TOO_LONG = BadLine(f"not an order: over {MAX_LINE:,} characters")


def parse_line(fields: dict[str, Any]) -> OrderCreate:
    """One line's fields as an order, or `BadLine` naming each bad field."""
    try:
        return valid_order(**fields)
    except BadOrder as exc:
        raise BadLine(str(exc)) from None


def derived_order_id(number: int, text: str) -> str:
    """A stable id for a line without one: the same line of the same file is the same order."""
    return "b-" + hashlib.sha256(f"{number}:{text.strip()}".encode()).hexdigest()[:20]


def read_lines(path: Path) -> Iterator[Record]:
    """(number of the line it starts on, raw text, fields or why there are none) for every
    non-blank JSONL line, or every CSV order (its rows); a leading BOM is skipped."""
    with _opened(path) as handle:
        if path.suffix.lower() not in JSONL_SUFFIXES:
            yield from _carts(_csv_records(_lines(handle)))
            return
        for number, text in _jsonl_records(handle):
            yield number, text, TOO_LONG if len(text) > MAX_LINE else _json_fields(text)


def _opened(path: Path) -> TextIO:
    """The file as text; a leading BOM is skipped, undecodable bytes are replaced."""
    return path.open(newline="", encoding="utf-8-sig", errors="replace")


def _jsonl_records(handle: TextIO) -> Iterator[tuple[int, str]]:
    """(number, text) of every JSONL line that is a record: not blank, or too long."""
    for number, text in enumerate(_lines(handle), 1):
        if len(text) > MAX_LINE or text.strip():
            yield number, text


def _lines(handle: TextIO) -> Iterator[str]:
    """The file's lines; of a line over `MAX_LINE` characters only the first `MAX_LINE` + 1
    (the rest is read in pieces and dropped: memory stays bounded)."""
    while line := handle.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE and line[-1] not in "\r\n":
            while (rest := handle.readline(MAX_LINE)) and rest[-1] not in "\r\n":
                pass
        yield line


def _csv_records(lines: Iterator[str]) -> Iterator[Record]:
    """One CSV reader over the whole file (a quoted field may hold newlines); the first record
    is the header, and a record's text is the lines it was read from."""
    taken: list[str] = []
    reader = csv.reader(_kept(lines, taken))
    try:
        header = next(reader, [])
    except csv.Error:  # no usable header: every record is then the wrong length
        header = []
    while True:
        taken.clear()
        number = reader.line_num + 1
        try:
            row: list[str] | BadLine | None = next(reader, None)
        except csv.Error as exc:  # a quoted field over csv's limit; the reader goes on after it
            row = BadLine(f"not an order: {exc}")
        if row is None:
            return
        text = "".join(taken)
        if text.strip():
            fields = row if isinstance(row, BadLine) else _csv_fields(header, row, text)
            if isinstance(fields, BadLine) and reader.line_num > number:  # a stray quote?
                fields = BadLine(f"{fields} (a record of lines {number} to {reader.line_num})")
            yield number, text, fields


def _carts(records: Iterator[Record]) -> Iterator[Record]:
    """CSV rows as orders: consecutive rows with the same `order_id` are one order, a line
    each (its `customer_id` and `payment_method` given on its first row, and equal on any row
    that repeats them); a row without an `order_id` is an order of its own."""
    group: list[Record] = []
    for record in records:
        fields = record[2]
        if group and (isinstance(fields, BadLine) or fields.get("order_id") != _id_of(group)):
            yield _cart(group)
            group = []
        if isinstance(fields, BadLine) or not fields.get("order_id"):
            yield record
        else:
            group.append(record)
    if group:
        yield _cart(group)


def _id_of(group: list[Record]) -> str:
    return group[0][2]["order_id"]  # type: ignore[index]


def _cart(group: list[Record]) -> Record:
    """The rows of one order as one record: its `lines`, and the order's other fields (a
    single row stays as it is)."""
    if len(group) == 1:
        return group[0]
    number, text = group[0][0], "".join(record[1] for record in group)
    order: dict[str, Any] = {}
    lines = []
    for row_number, _, fields in group:
        assert not isinstance(fields, BadLine)
        lines.append({k: v for k, v in fields.items() if k in LINE_FIELDS})
        for name, value in fields.items():
            if name in LINE_FIELDS:
                continue
            if order.setdefault(name, value) != value:
                return (
                    number,
                    text,
                    BadLine(
                        f"order {_id_of(group)}: the row on line {row_number} has {name} "
                        f"{value!r}, not {order[name]!r}"
                    ),
                )
    return number, text, {**order, "lines": lines}


def _kept(lines: Iterator[str], taken: list[str]) -> Iterator[str]:
    """`lines`, each also appended to `taken`."""
    for line in lines:
        taken.append(line)
        yield line


def _json_fields(text: str) -> dict[str, Any] | BadLine:
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an integer of 4,300+ digits, too deep
        return NOT_AN_ORDER
    return fields if isinstance(fields, dict) else NOT_AN_ORDER


def _csv_fields(header: list[str], row: list[str], text: str) -> dict[str, Any] | BadLine:
    if len(text) > MAX_LINE:
        return TOO_LONG
    if len(row) != len(header):
        return NOT_AN_ORDER
    fields: dict[str, Any] = {
        name.strip(): value.strip() for name, value in zip(header, row, strict=True) if value
    }
    quantity = fields.get("quantity", "")
    if quantity.isascii() and quantity.isdigit():  # CSV has no numbers; JSON lines must be exact
        with suppress(ValueError):  # 4,300+ digits: left as text, the validation says why
            fields["quantity"] = int(quantity)
    return fields


@dataclass
class BatchReport:
    """What happened to every line: counted always, listed up to `MAX_REPORTED`."""

    statuses: Counter[str] = field(default_factory=Counter)
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    bad_line_count: int = 0
    unfinished: list[dict[str, str]] = field(default_factory=list)
    already_settled: int = 0

    def bad(self, number: int, reason: str) -> None:
        self.bad_line_count += 1
        if len(self.bad_lines) < MAX_REPORTED:
            self.bad_lines.append({"line": number, "error": reason})

    def ended(self, order_id: str, status: str) -> None:
        self.statuses[status] += 1
        if status != OrderStatus.COMPLETED and len(self.unfinished) < MAX_REPORTED:
            self.unfinished.append({"order_id": order_id, "status": status})


class FileOrders:
    """The batch's source: records each line's order leased to this batch, as the pipeline
    asks for more, so the file is never read ahead by more than the concurrency."""

    def __init__(self, path: Path, report: BatchReport) -> None:
        self.owner = f"batch:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.report = report
        self._lines = read_lines(path)
        self._retry: list[str] = []
        self._lines_of: dict[str, int] = {}  # order id -> the line that brought it
        self._done = False

    def take(self, limit: int) -> list[str]:
        taken, self._retry = self._retry[:limit], self._retry[limit:]
        while len(taken) < limit and not self._done:
            line = next(self._lines, None)
            if line is None:
                self._done = True
            elif (order_id := self._record(*line)) is not None:
                taken.append(order_id)
        return taken

    def exhausted(self) -> bool:
        return self._done and not self._retry

    def give_back(self, order_ids: list[str]) -> None:
        self._retry.extend(order_ids)

    def _record(self, number: int, text: str, fields: dict[str, Any] | BadLine) -> str | None:
        """Record the line's order and return its id if it is to run now."""
        if isinstance(fields, BadLine):
            self.report.bad(number, str(fields))
            return None
        try:
            order = parse_line(fields)
            order_id = order.order_id or derived_order_id(number, text)
            if order_id in self._lines_of:
                raise BadLine(f"order {order_id} is already on line {self._lines_of[order_id]}")
            order_id, created = record_order(
                order.model_copy(update={"order_id": order_id}), lease_owner=self.owner
            )
            self._lines_of[order_id] = number
            if created or self._still_active(order_id):
                return order_id
        except (BadLine, OrderConflict) as exc:
            self.report.bad(number, str(exc))
            return None
        self.report.already_settled += 1
        return None

    @staticmethod
    def _still_active(order_id: str) -> bool:
        """Whether the same order, recorded before under this id, is still in progress."""
        with session_scope(readonly=True) as session:
            known = saga_log.get_order(session, order_id=order_id)
        return known.status in ACTIVE_STATUSES


def existing_file(text: str) -> Path:
    """A readable regular file: a pipe or a terminal could not be read twice (once to count
    the orders for the progress bar, once to run them)."""
    path = Path(text)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise argparse.ArgumentTypeError(f"{text}: is a directory")
        if not stat.S_ISREG(mode):
            raise argparse.ArgumentTypeError(
                f"{text}: not a regular file (a pipe or a device is read once: save it to a file)"
            )
        path.open("rb").close()
    except (FileNotFoundError, NotADirectoryError):
        raise argparse.ArgumentTypeError(f"{text}: no such file") from None
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror or exc}") from None
    return path


def count_orders(path: Path) -> int:
    """The progress bar's total: the records `read_lines` yields, each an order, a bad line or
    one already settled (a CSV's header is none, a cart's rows are one); JSONL lines are
    counted, not parsed."""
    if path.suffix.lower() not in JSONL_SUFFIXES:
        return sum(1 for _ in read_lines(path))
    with _opened(path) as handle:
        return sum(1 for _ in _jsonl_records(handle))


def run_batch(path: Path, concurrency: int, progress: Progress | None = None) -> dict[str, Any]:
    """Fulfil every order of the file; the summary of what happened."""
    report = BatchReport()
    source = FileOrders(path, report)
    bar = progress.add_task(path.name, total=count_orders(path)) if progress else None

    def ended(order_id: str, status: str) -> None:
        report.ended(order_id, status)
        if progress is not None and bar is not None:
            progress.update(bar, completed=_lines_done(report))

    pipeline = Pipeline(
        source=source,
        flow_name="order-batch",
        run_name=lambda: f"batch-{path.stem}-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        concurrency=concurrency,
        on_done=ended,
    )
    started = time.monotonic()
    run_until_stopped(pipeline)
    elapsed = time.monotonic() - started
    ran = sum(report.statuses.values())
    return {
        "file": str(path),
        "orders": ran,
        "statuses": dict(report.statuses),
        "already_settled": report.already_settled,
        "bad_line_count": report.bad_line_count,
        "bad_lines": report.bad_lines,
        "unfinished": report.unfinished,
        "elapsed_seconds": round(elapsed, 3),
        "orders_per_second": round(ran / elapsed, 2) if elapsed else 0.0,
    }


def _lines_done(report: BatchReport) -> int:
    return sum(report.statuses.values()) + report.bad_line_count + report.already_settled


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"batch {summary['file']}")
    table.add_column("outcome")
    table.add_column("orders", justify="right")
    for status, count in sorted(summary["statuses"].items()):
        table.add_row(status, str(count))
    table.add_row("already settled (skipped)", str(summary["already_settled"]))
    table.add_row("bad lines (skipped)", str(summary["bad_line_count"]))
    table.caption = (
        f"{summary['orders']} orders in {summary['elapsed_seconds']:.1f} s "
        f"({summary['orders_per_second']:.1f} orders/s)"
    )
    return table


def batch_exit_code(summary: dict[str, Any]) -> int:
    """The worst outcome: 3 needs_attention, 4 an order left in progress, 1 failed or
    cancelled orders or bad lines, 0 every order completed."""
    statuses = set(summary["statuses"])
    if OrderStatus.NEEDS_ATTENTION in statuses:
        return ExitCode.NEEDS_ATTENTION
    if statuses - set(EXIT_CODES):
        return ExitCode.IN_PROGRESS
    if summary["bad_line_count"] or statuses - {OrderStatus.COMPLETED}:
        return ExitCode.FAILED
    return ExitCode.COMPLETED


def batch(args: argparse.Namespace) -> int:
    path: Path = args.file
    err = Console(stderr=True)
    with Progress(
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        summary = run_batch(path, args.concurrency, progress)
    if args.json:
        print(json.dumps(summary))
    else:
        for bad in summary["bad_lines"]:
            print(f"line {bad['line']}: {bad['error']}")
        Console().print(summary_table(summary))
    return batch_exit_code(summary)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m flows.batch", description=__doc__)
    parser.add_argument(
        "file", type=existing_file, help="a .jsonl (one JSON object a line) or .csv file"
    )
    parser.add_argument(
        "--concurrency",
        type=whole_number(256),
        default=get_settings().intake_concurrency,
        help="orders in flight at once (FLOWFORGE_INTAKE_CONCURRENCY)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    return run_command(parser, batch, argv)


if __name__ == "__main__":
    sys.exit(main())
