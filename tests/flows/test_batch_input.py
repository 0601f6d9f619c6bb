"""How the batch reads its file (`flows.batch.read_lines`, `existing_file`), without a Prefect
server: ASCII digits only, bounded lines and fields, one CSV reader over the whole file, a
leading BOM, and a one-line error for a path that is not a regular file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from flows.batch import MAX_LINE, BadLine, count_orders, existing_file, parse_line, read_lines
from tests.flows.helpers import order_line, write

HEADER = "order_id,product_id,quantity,customer_id,payment_method"


def lines_of(path: Path) -> dict[int, tuple[str, dict[str, Any] | BadLine]]:
    return {number: (text, fields) for number, text, fields in read_lines(path)}


def problem(fields: dict[str, Any] | BadLine) -> str:
    """Why the line is not an order ("" if it is one)."""
    if isinstance(fields, BadLine):
        return str(fields)
    try:
        parse_line(fields)
    except BadLine as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("quantity", ["²", "٣", "３", "1" * 5000])
def test_a_csv_quantity_is_ascii_digits_or_a_bad_quantity(tmp_path, quantity):
    path = write(tmp_path / "q.csv", [HEADER, f"q-1,SKU-003,{quantity},cust-1,tok_visa"])
    [(_, fields)] = lines_of(path).values()
    assert problem(fields).startswith("quantity:"), problem(fields)


def test_a_csv_quantity_of_ascii_digits_is_a_number(tmp_path):
    path = write(tmp_path / "q.csv", [HEADER, "q-1,SKU-003,007,cust-1,tok_visa"])
    [(_, fields)] = lines_of(path).values()
    assert fields["quantity"] == 7
    assert problem(fields) == ""


@pytest.mark.parametrize(
    "text", ['{"quantity": 1' + "0" * 5000 + "}", "[" * 100_000, '{"a": ' * 100_000]
)
def test_json_python_cannot_load_is_not_an_order(tmp_path, text):
    path = write(tmp_path / "odd.jsonl", [text, order_line("after")])
    lines = lines_of(path)
    assert problem(lines[1][1]).startswith("not an order")
    assert problem(lines[2][1]) == ""


def test_a_stray_quote_is_one_bad_line_naming_the_lines_it_took(tmp_path):
    """An unclosed quote takes the lines after it into its field: to the end of the file, or
    until the field is over csv's limit (the reader goes on after that line)."""
    order = "ok-{:04},SKU-003,1,cust-{:04},tok_visa"
    path = write(
        tmp_path / "stray.csv",
        [HEADER, 'q-1,SKU-003,1,"cust-1,tok_visa', *(order.format(i, i) for i in range(9000))],
    )
    lines = lines_of(path)
    field, last = len("cust-1,tok_visa\n"), 2
    while field <= 128 * 1024:  # the line on which the quoted field passes 128 KiB
        field, last = field + len(order.format(0, 0) + "\n"), last + 1
    error = problem(lines[2][1])
    assert error.startswith("not an order: field larger than field limit (131072)"), error
    assert error.endswith(f"(a record of lines 2 to {last})"), (error, last)
    assert sorted(lines) == [2, *range(last + 1, 9002 + 1)]
    assert all(problem(fields) == "" for number, (_, fields) in lines.items() if number > 2)

    path = write(tmp_path / "short.csv", [HEADER, 'q-1,"SKU-003,1,cust-1,tok_visa', order])
    assert problem(lines_of(path)[2][1]) == (
        "not an order: expected a JSON object or a CSV row (a record of lines 2 to 3)"
    )


def test_a_line_over_the_limit_is_one_bad_line_read_in_pieces(tmp_path):
    """Small fields but a huge line: the line is not kept whole, the next line is read."""
    huge_csv = "," * (3 * MAX_LINE)
    csv_path = write(tmp_path / "wide.csv", [HEADER, huge_csv, "ok-1,SKU-003,1,cust-1,tok_visa"])
    jsonl_path = write(
        tmp_path / "huge.jsonl", [order_line("ok-0"), "x" * (3 * MAX_LINE), order_line("ok-1")]
    )
    for path in (csv_path, jsonl_path):
        lines = lines_of(path)
        assert sorted(lines) == ([2, 3] if path is csv_path else [1, 2, 3])
        text, fields = lines[2]
        assert problem(fields) == f"not an order: over {MAX_LINE:,} characters"
        assert len(text) <= MAX_LINE + 1
        assert problem(lines[3][1]) == ""
    assert count_orders(jsonl_path) == 3 and count_orders(csv_path) == 2


def test_a_quoted_csv_field_may_hold_newlines(tmp_path):
    path = write(
        tmp_path / "multi.csv",
        [
            HEADER,
            'm-1,SKU-003,1,"cust-1',  # a trailing newline inside the quotes: stripped
            '",tok_visa',
            'm-2,SKU-003,1,"cust',  # a newline inside the name: one bad line
            '2",tok_visa',
            ",SKU-003,1,cust-3,tok_visa",
        ],
    )
    lines = lines_of(path)
    assert sorted(lines) == [2, 4, 6]  # the line each record starts on
    assert lines[2][1]["customer_id"] == "cust-1"
    assert problem(lines[2][1]) == ""
    assert problem(lines[4][1]).startswith("customer_id:")
    # an ordinary line's text is its line, as before: the id derived from it is unchanged
    assert lines[6][0] == ",SKU-003,1,cust-3,tok_visa\n"
    assert count_orders(path) == 3  # the progress bar's total: records, not the file's 6 lines


def test_a_leading_bom_is_not_part_of_the_first_line(tmp_path):
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes(f"\ufeff{HEADER}\nb-1,SKU-003,1,cust-1,tok_visa\n".encode())
    jsonl_path = tmp_path / "bom.jsonl"
    jsonl_path.write_bytes(f"\ufeff{order_line('b-2')}\n".encode())
    for path in (csv_path, jsonl_path):
        [(_, fields)] = lines_of(path).values()
        assert problem(fields) == ""


def test_the_file_must_be_a_readable_regular_file(tmp_path):
    regular = write(tmp_path / "orders.csv", [HEADER])
    fifo = tmp_path / "orders.fifo"
    os.mkfifo(fifo)
    assert existing_file(str(regular)) == regular
    expected = {
        tmp_path / "nope.csv": "no such file",
        regular / "orders.csv": "no such file",
        tmp_path: "is a directory",
        fifo: "not a regular file",
    }
    for path, error in expected.items():
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{path}: {error}"):
            existing_file(str(path))


def test_consecutive_csv_rows_of_one_order_id_are_one_cart(tmp_path):
    path = write(
        tmp_path / "carts.csv",
        [
            HEADER,
            "cart-1,SKU-001,2,cust-1,tok_visa",
            "cart-1,SKU-003,1,,",  # the order's fields may be left to its first row
            "cart-1,SKU-002,4,cust-1,tok_visa",  # or repeated, equal
            ",SKU-003,1,cust-2,tok_visa",  # no id: an order of its own
            "single,SKU-002,1,cust-3,tok_visa",
        ],
    )
    records = lines_of(path)
    assert sorted(records) == [2, 5, 6]
    cart = parse_line(records[2][1])
    assert [(line.product_id, line.quantity) for line in cart.lines] == [
        ("SKU-001", 2),
        ("SKU-003", 1),
        ("SKU-002", 4),
    ]
    assert (cart.order_id, cart.customer_id, cart.payment_method) == (
        "cart-1",
        "cust-1",
        "tok_visa",
    )
    assert records[2][0].count("\n") == 3  # its text is its rows: the derived id depends on them
    assert [len(parse_line(records[n][1]).lines) for n in (5, 6)] == [1, 1]
    assert count_orders(path) == 3  # the batch's progress bar ends at its total


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        (
            ["c-1,SKU-001,2,cust-1,tok_visa", "c-1,SKU-003,1,cust-9,tok_visa"],
            "order c-1: the row on line 3 has customer_id 'cust-9', not 'cust-1'",
        ),
        (
            ["c-1,SKU-001,2,cust-1,tok_visa", "c-1,SKU-001,1,cust-1,tok_visa"],
            "lines: Value error, line 2: product_id 'SKU-001' is already line 1",
        ),
        (
            ["c-1,SKU-001,2,cust-1,tok_visa", "c-1,SKU-003,0,cust-1,tok_visa"],
            "lines.1.quantity: Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_bad_csv_cart_is_one_bad_order_naming_the_row(tmp_path, rows, reason):
    path = write(tmp_path / "bad.csv", [HEADER, *rows])
    [(_, fields)] = lines_of(path).values()
    assert problem(fields).startswith(reason), problem(fields)


def test_a_jsonl_cart_is_its_lines(tmp_path):
    cart = [{"product_id": "SKU-001", "quantity": 1}, {"product_id": "SKU-002", "quantity": 2}]
    path = write(
        tmp_path / "carts.jsonl", [order_line("j-1", product_id=None, quantity=None, lines=cart)]
    )
    [(_, fields)] = lines_of(path).values()
    assert [line.model_dump() for line in parse_line(fields).lines] == cart
