"""`python -m storage receive`: stock comes in, the invariants hold, bad input changes nothing."""

from __future__ import annotations

import json

import pytest

from storage import operations
from storage.__main__ import main
from storage.db import session_scope
from storage.errors import ProductMismatch
from tests.flows.helpers import engine_state
from tests.support import run_module


def stock(product_id: str) -> dict:
    inventory = json.loads(run_module("storage", "snapshot").stdout)["inventory"]
    return next(p for p in inventory if p["product_id"] == product_id)


@pytest.mark.e2e
def test_receive_adds_to_an_existing_product(database):
    done = run_module("storage", "receive", "SKU-001", "40")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "received 40 x SKU-001: available 65, reserved 0, received 65\n"
    assert stock("SKU-001") == {
        "product_id": "SKU-001",
        "name": "Widget",
        "unit_price": 1000,
        "available": 65,
        "reserved": 0,
        "total_received": 65,
    }
    audit = run_module("storage", "audit")
    assert (audit.returncode, audit.stdout) == (0, "audit clean: every invariant holds\n")


@pytest.mark.e2e
def test_receive_creates_a_new_product_then_adds_to_it(database):
    first = run_module(
        "storage", "receive", "SKU-9", "5", "--name", " Doohickey ", "--unit-price", "250"
    )
    assert first.stdout == "received 5 x SKU-9: available 5, reserved 0, received 5\n", first.stderr
    same_price = run_module("storage", "receive", "SKU-9", "3", "--unit-price", "250")
    assert same_price.returncode == 0, same_price.stderr
    plain = run_module("storage", "receive", "NEW.2", "1")
    assert plain.returncode == 0, plain.stderr
    assert stock("SKU-9") == {
        "product_id": "SKU-9",
        "name": "Doohickey",
        "unit_price": 250,
        "available": 8,
        "reserved": 0,
        "total_received": 8,
    }
    assert (stock("NEW.2")["name"], stock("NEW.2")["unit_price"]) == ("NEW.2", 1000)
    assert run_module("storage", "audit").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SKU-001", "0"], "argument QUANTITY: must be at least 1, got 0"),
        (["SKU-001", "-5"], "argument QUANTITY: must be at least 1, got -5"),
        (["SKU-001", "2.5"], "argument QUANTITY: must be a whole number, got '2.5'"),
        (["SKU-001", "ten"], "argument QUANTITY: must be a whole number, got 'ten'"),
        (["SKU-001", "1000001"], "argument QUANTITY: must be at most 1000000, got 1000001"),
        (["SKU-001"], "the following arguments are required: QUANTITY"),
        (["bad id", "1"], "argument PRODUCT: 'bad id' is not a valid id"),
        (["SKU-001\n", "1"], "argument PRODUCT: 'SKU-001\\n' is not a valid id"),
        (["x" * 129, "1"], "is not a valid id"),
        (["NEW", "1", "--unit-price", "0"], "argument --unit-price: must be at least 1, got 0"),
        (["NEW", "1", "--unit-price", "9.99"], "argument --unit-price: must be a whole number"),
        (["NEW", "1", "--unit-price", "1000001"], "must be at most 1000000, got 1000001"),
        (["NEW", "1", "--name", "  "], "argument --name: '  ' is not a valid name"),
        (["NEW", "1", "--name", "caf\u00e9"], "is not a valid name"),
        (
            ["SKU-001", "1", "--unit-price", "1200"],
            "product 'SKU-001' has unit_price 1000, not 1200",
        ),
        (
            ["SKU-001", "1", "--name", "Sprocket"],
            "product 'SKU-001' has name 'Widget', not 'Sprocket'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(database, capsys, args, message):
    before = engine_state()
    with pytest.raises(SystemExit) as exited:
        main(["receive", *args])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("python -m storage") and message in err
    assert engine_state() == before


def test_a_mismatch_found_in_storage_receives_nothing(database):
    before = engine_state()
    with session_scope() as session, pytest.raises(ProductMismatch):
        operations.receive_stock(session, product_id="SKU-002", quantity=7, unit_price=1)
    assert engine_state() == before
