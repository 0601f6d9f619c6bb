"""`python -m flows.fulfill`: the JSON contract, exit codes, and bad input that touches nothing."""

from __future__ import annotations

import json
import subprocess

import pytest

from flows.fulfill import main
from storage.models import OrderCreate
from tests.flows.helpers import engine_state
from tests.support import assert_audit_clean, child_env, run_module

GOOD = [
    "--product",
    "SKU-001",
    "--quantity",
    "2",
    "--customer",
    "c1",
    "--payment-method",
    "tok_visa",
]
JSON_FIELDS = {
    "order_id",
    "workflow_id",
    "status",
    "steps_completed",
    "compensations",
    "compensation_triggered",
    "failure_reason",
    "flow_run_id",
    "events",
}


WHO = ["--customer", "c1", "--payment-method", "tok_visa"]


def cart(*lines: str) -> list[str]:
    """Arguments of an order of these `PRODUCT:UNITS` lines."""
    return [*(arg for line in lines for arg in ("--line", line)), *WHO]


def without(flag: str) -> list[str]:
    i = GOOD.index(flag)
    return GOOD[:i] + GOOD[i + 2 :]


def with_value(flag: str, value: str) -> list[str]:
    args = list(GOOD)
    args[args.index(flag) + 1] = value
    return args


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (with_value("--quantity", "0"), {}, "must be at least 1"),
        (with_value("--quantity", "-3"), {}, "must be at least 1"),
        (with_value("--quantity", "two"), {}, "must be a whole number"),
        (with_value("--quantity", "99999999999999999999"), {}, "must be at most 1000000"),
        (without("--product"), {}, "--product"),
        (without("--customer"), {}, "--customer"),
        (without("--payment-method"), {}, "--payment-method"),
        (with_value("--customer", "  "), {}, "must not be empty"),
        ([*GOOD, "--order-id", "bad id!"], {}, "not a valid order id"),
        (GOOD, {"FAIL_AT": "moon"}, "unknown point 'moon'"),
        (GOOD, {"CRASH_AT": "payment:sideways"}, "needs ':before' or ':after'"),
        (cart("SKU-001:2", "SKU-001:1"), {}, "line 2: product_id 'SKU-001' is already line 1"),
        (cart("SKU-001:0"), {}, "must be at least 1"),
        (cart("SKU-001:true"), {}, "must be a whole number"),
        (cart("SKU-001"), {}, "'SKU-001' is not PRODUCT:UNITS"),
        (cart(":2"), {}, "is not PRODUCT:UNITS"),
        (cart(*(f"P-{n}:1" for n in range(101))), {}, "lines: List should have at most 100"),
        ([*GOOD, "--line", "SKU-003:1"], {}, "give --line, or --product and --quantity, not both"),
        (WHO, {}, "give --line PRODUCT:UNITS (repeatable), or --product and --quantity"),
    ],
)
def test_bad_input_exits_2_with_one_line(db, capsys, monkeypatch, argv, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = engine_state()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert engine_state() == before


@pytest.mark.e2e
def test_bad_input_in_a_real_process(db):
    proc = run_module("flows.fulfill", *with_value("--quantity", "0"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m flows.fulfill: error: argument --quantity: must be at least 1, got 0"
    ]
    assert not db.exists() or engine_state()["payments"] == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("module", "args", "env", "message"),
    [
        (
            "flows.fulfill",
            GOOD,
            {"FLOWFORGE_LEASE_SECONDS": "soon"},
            "flowforge: invalid configuration: FLOWFORGE_LEASE_SECONDS",
        ),
        ("flows.reconcile", [], {"CRASH_AT": "paymnet:after"}, "unknown point 'paymnet'"),
        (
            "flows.fulfill",
            GOOD,
            {"FLOWFORGE_STRIPE_API_BASE": "localhost:4300"},
            "'localhost:4300' is not an http:// or https:// URL",
        ),
        (
            "flows.fulfill",
            GOOD,
            {"FLOWFORGE_PAYMENT_URL": "http://localhost:4300"},
            "FLOWFORGE_PAYMENT_URL: retired with the provider's own contract; set"
            " FLOWFORGE_PAYMENT_PROVIDER=stripe",
        ),
        (
            "flows.fulfill",
            GOOD,
            {"FLOWFORGE_PAYMENT_PROVIDER": "stripe"},
            "FLOWFORGE_PAYMENT_PROVIDER=stripe needs STRIPE_API_KEY",
        ),
        (
            "storage",
            ["audit"],
            {"FLOWFORGE_PAYMENT_PROVIDER": "stripe", "STRIPE_API_KEY": "sk_live_s3cr3t"},
            "STRIPE_API_KEY is a live key: it moves real money; refused unless"
            " FLOWFORGE_STRIPE_ALLOW_LIVE=true",
        ),
        (
            "flows.fulfill",
            GOOD,
            {"STRIPE_API_KEY": "pk_test_s3cr3t"},
            "STRIPE_API_KEY is not a Stripe secret key",
        ),
        ("flows.cancel", ["some-order"], {"FAIL_AT": "refund:0"}, "needs a positive attempt"),
    ],
)
def test_bad_environment_exits_2_with_one_line(db, module, args, env, message):
    proc = run_module(module, *args, env=child_env(**env), timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr
    assert "s3cr3t" not in proc.stderr + proc.stdout  # a key is never repeated


def run_cli(api_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return run_module("flows.fulfill", *args, env=child_env(api_url, **env))


@pytest.mark.e2e
def test_json_contract_and_exit_codes(db, prefect_server):
    done = run_cli(prefect_server, *GOOD, "--json", "--order-id", "cli-1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result.keys() >= JSON_FIELDS
    assert (result["order_id"], result["workflow_id"], result["status"]) == (
        "cli-1",
        "order-cli-1",
        "completed",
    )
    assert set(result["events"][0]) == {"step", "status", "attempt", "message", "timestamp"}

    failed = run_cli(prefect_server, *GOOD, "--json", FAIL_AT="warehouse")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["compensations"] == [
        "revert_warehouse",
        "refund_payment",
        "release_inventory",
    ]

    stuck = run_cli(prefect_server, *GOOD, FAIL_AT="warehouse,release")
    assert stuck.returncode == 3
    assert "needs_attention" in stuck.stdout and "release_inventory" in stuck.stdout

    again = run_cli(prefect_server, *GOOD, "--json", "--order-id", "cli-1")
    assert again.returncode == 0
    assert json.loads(again.stdout) == result
    assert_audit_clean()


@pytest.mark.e2e
def test_a_cart_from_the_command_line(db, prefect_server):
    done = run_cli(prefect_server, *cart("SKU-003:2", "SKU-001:1"), "--order-id", "cli-cart")
    assert done.returncode == 0, done.stderr
    assert "2 x SKU-003, 1 x SKU-001, 30.00" in done.stdout
    again = run_cli(
        prefect_server, *cart("SKU-003:2", "SKU-001:1"), "--json", "--order-id", "cli-cart"
    )
    result = json.loads(again.stdout)
    assert result["lines"] == [
        {"product_id": "SKU-003", "quantity": 2},
        {"product_id": "SKU-001", "quantity": 1},
    ]
    assert (result["status"], result["amount"]) == ("completed", 3000)
    assert_audit_clean()


def test_order_id_that_names_another_order_is_refused(db, capsys):
    from flows.fulfill import record_order

    record_order(
        OrderCreate(
            product_id="SKU-001",
            quantity=1,
            customer_id="c",
            payment_method="t",
            order_id="first",
            workflow_id="wf-shared",
        )
    )
    before = engine_state()
    with pytest.raises(SystemExit) as exit_info:
        main([*GOOD, "--order-id", "wf-shared"])
    assert exit_info.value.code == 2
    assert "id 'wf-shared' is already used by order 'first'" in capsys.readouterr().err
    assert engine_state() == before


def test_an_order_id_recorded_with_other_details_is_refused(db, capsys):
    from flows.fulfill import record_order

    record_order(
        OrderCreate(
            product_id="SKU-001",
            quantity=1,
            customer_id="c",
            payment_method="tok_visa",
            order_id="mine",
        )
    )
    before = engine_state()
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["--product", "SKU-002", "--quantity", "1", "--customer", "c"]
            + ["--payment-method", "tok_visa", "--order-id", "mine"]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (
        "order 'mine' exists already with other details: product_id 'SKU-001', not 'SKU-002'" in err
    )
    assert len(err.strip().splitlines()) == 1
    assert engine_state() == before
