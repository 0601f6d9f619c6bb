"""What the provider does, in Stripe's words: PaymentMethods from test tokens, PaymentIntents
created, confirmed (the only step that moves money) and canceled, full refunds, and lists; each
object answered in Stripe's shape. Every function works inside the caller's transaction and
raises `ApiError` as Stripe answers."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any

from provider.cards import Card, test_card
from provider.errors import ApiError, invalid, missing
from provider.schemas import (
    IntentCancel,
    IntentConfirm,
    IntentCreate,
    ListParams,
    PaymentMethodCreate,
    RefundCreate,
    RefundList,
)

Object = dict[str, Any]
CANCELABLE = ("requires_payment_method", "requires_confirmation", "requires_action", "processing")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _card(conn: sqlite3.Connection, payment_method: str) -> Card:
    """The card behind a PaymentMethod id: a test one (`pm_card_visa`) or one made from a token."""
    card = test_card(payment_method, "pm_card_")
    if card is not None:
        return card
    row = conn.execute(
        "SELECT card FROM payment_methods WHERE id = ?", (payment_method,)
    ).fetchone()
    if row is None:
        raise missing("PaymentMethod", payment_method, param="payment_method")
    return Card(**json.loads(row["card"]))


# -- PaymentMethods


def create_payment_method(conn: sqlite3.Connection, params: PaymentMethodCreate) -> Object:
    card = test_card(params.card.token, "tok_")
    if card is None:
        raise missing("token", params.card.token, param="card[token]")
    row = (_new_id("pm"), json.dumps(card.__dict__), int(time.time()))
    conn.execute("INSERT INTO payment_methods (id, card, created) VALUES (?, ?, ?)", row)
    return payment_method_object(row[0], card, row[2])


def payment_method_object(pm_id: str, card: Card, created: int) -> Object:
    return {
        "id": pm_id,
        "object": "payment_method",
        "type": "card",
        "card": {
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "country": "US",
        },
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "customer": None,
        "livemode": False,
        "metadata": {},
        "created": created,
    }


# -- PaymentIntents


def _intent_row(conn: sqlite3.Connection, intent_id: str, param: str | None = None) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM payment_intents WHERE id = ?", (intent_id,)).fetchone()
    if row is None:
        raise missing("payment_intent", intent_id, param=param)
    return row


def create_intent(conn: sqlite3.Connection, params: IntentCreate) -> Object:
    if params.payment_method is not None:
        _card(conn, params.payment_method)  # an unknown one is refused now, as Stripe does
    intent_id = _new_id("pi")
    status = "requires_confirmation" if params.payment_method else "requires_payment_method"
    conn.execute(
        "INSERT INTO payment_intents (id, amount, currency, status, payment_method, description,"
        " metadata, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            intent_id,
            params.amount,
            params.currency,
            status,
            params.payment_method,
            params.description,
            json.dumps(params.metadata, sort_keys=True),
            int(time.time()),
        ),
    )
    if params.confirm:
        return confirm_intent(conn, intent_id, IntentConfirm(expand=params.expand))
    return intent_object(conn, _intent_row(conn, intent_id), params.expand)


def _unexpected_state(verb: str, intent_id: str, status: str, allowed: tuple[str, ...]) -> ApiError:
    return ApiError(
        400,
        "invalid_request_error",
        f"You cannot {verb} this PaymentIntent because it has a status of {status}. Only a"
        f" PaymentIntent with one of the following statuses may be {verb}ed:"
        f" {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
        extra={"payment_intent": {"id": intent_id, "object": "payment_intent", "status": status}},
    )


def confirm_intent(conn: sqlite3.Connection, intent_id: str, params: IntentConfirm) -> Object:
    """Charge the intent's card: `succeeded` with its charge, or a 402 decline that leaves the
    intent `requires_payment_method` (with `last_payment_error`)."""
    row = _intent_row(conn, intent_id)
    if row["status"] not in CONFIRMABLE:
        raise _unexpected_state("confirm", intent_id, row["status"], CONFIRMABLE)
    payment_method = params.payment_method or row["payment_method"]
    if payment_method is None:
        raise invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    card = _card(conn, payment_method)
    if card.code is not None:
        error = {
            "type": "card_error",
            "code": card.code,
            "message": card.message,
            **({"decline_code": card.decline_code} if card.decline_code else {}),
        }
        conn.execute(
            "UPDATE payment_intents SET status = 'requires_payment_method', payment_method = NULL,"
            " last_payment_error = ? WHERE id = ?",
            (json.dumps(error), intent_id),
        )
        intent = intent_object(conn, _intent_row(conn, intent_id), [])
        raise ApiError(
            402,
            "card_error",
            card.message,
            code=card.code,
            decline_code=card.decline_code,
            extra={"payment_intent": intent},
        )
    charge_id = _new_id("ch")
    conn.execute(
        "INSERT INTO charges (id, payment_intent, amount, currency, payment_method, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (charge_id, intent_id, row["amount"], row["currency"], payment_method, int(time.time())),
    )
    conn.execute(
        "UPDATE payment_intents SET status = 'succeeded', payment_method = ?, latest_charge = ?,"
        " last_payment_error = NULL WHERE id = ?",
        (payment_method, charge_id, intent_id),
    )
    return intent_object(conn, _intent_row(conn, intent_id), params.expand)


def cancel_intent(conn: sqlite3.Connection, intent_id: str, params: IntentCancel) -> Object:
    row = _intent_row(conn, intent_id)
    if row["status"] not in CANCELABLE:
        raise _unexpected_state("cancel", intent_id, row["status"], CANCELABLE)
    conn.execute(
        "UPDATE payment_intents SET status = 'canceled', canceled_at = ?, cancellation_reason = ?"
        " WHERE id = ?",
        (int(time.time()), params.cancellation_reason, intent_id),
    )
    return intent_object(conn, _intent_row(conn, intent_id), params.expand)


def get_intent(conn: sqlite3.Connection, intent_id: str, expand: list[str]) -> Object:
    return intent_object(conn, _intent_row(conn, intent_id), expand)


def list_intents(conn: sqlite3.Connection, params: ListParams) -> Object:
    expand = [field.removeprefix("data.") for field in params.expand]
    rows, has_more = _page(conn, "payment_intents", {}, params)
    data = [intent_object(conn, row, expand) for row in rows]
    return list_object("/v1/payment_intents", data, has_more)


def intent_object(conn: sqlite3.Connection, row: sqlite3.Row, expand: list[str]) -> Object:
    latest_charge: str | Object | None = row["latest_charge"]
    if latest_charge is not None and "latest_charge" in expand:
        latest_charge = charge_object(
            conn.execute("SELECT * FROM charges WHERE id = ?", (latest_charge,)).fetchone()
        )
    succeeded = row["status"] == "succeeded"
    return {
        "id": row["id"],
        "object": "payment_intent",
        "amount": row["amount"],
        "amount_capturable": 0,
        "amount_received": row["amount"] if succeeded else 0,
        "capture_method": "automatic",
        "client_secret": f"{row['id']}_secret_{row['seq']}",
        "confirmation_method": "automatic",
        "created": row["created"],
        "currency": row["currency"],
        "customer": None,
        "description": row["description"],
        "last_payment_error": json.loads(row["last_payment_error"] or "null"),
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": json.loads(row["metadata"]),
        "payment_method": row["payment_method"],
        "payment_method_types": ["card"],
        "status": row["status"],
        "canceled_at": row["canceled_at"],
        "cancellation_reason": row["cancellation_reason"],
    }


def charge_object(row: sqlite3.Row) -> Object:
    return {
        "id": row["id"],
        "object": "charge",
        "amount": row["amount"],
        "amount_captured": row["amount"],
        "amount_refunded": row["amount_refunded"],
        "captured": True,
        "created": row["created"],
        "currency": row["currency"],
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": row["payment_intent"],
        "payment_method": row["payment_method"],
        "refunded": row["amount_refunded"] == row["amount"],
        "status": "succeeded",
    }


# -- Refunds


def create_refund(conn: sqlite3.Connection, params: RefundCreate) -> Object:
    """A full refund of a succeeded PaymentIntent's charge (named by either)."""
    if (params.payment_intent is None) == (params.charge is None):
        raise invalid("You must pass exactly one of payment_intent or charge.")
    if params.payment_intent is not None:
        intent = _intent_row(conn, params.payment_intent, param="payment_intent")
        if intent["latest_charge"] is None:
            raise invalid(
                f"This PaymentIntent ({params.payment_intent}) does not have a successful charge"
                " to refund.",
                param="payment_intent",
            )
        charge_id = intent["latest_charge"]
    else:
        charge_id = params.charge or ""
    charge = conn.execute("SELECT * FROM charges WHERE id = ?", (charge_id,)).fetchone()
    if charge is None:
        raise missing("charge", charge_id, param="charge")
    if charge["amount_refunded"]:
        raise invalid(
            f"Charge {charge_id} has already been refunded.", code="charge_already_refunded"
        )
    if params.amount is not None and params.amount != charge["amount"]:
        raise invalid("This double refunds in full only: omit amount.", param="amount")
    row = (
        _new_id("re"),
        charge["payment_intent"],
        charge_id,
        charge["amount"],
        charge["currency"],
        params.reason,
        int(time.time()),
    )
    conn.execute(
        "INSERT INTO refunds (id, payment_intent, charge, amount, currency, reason, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        row,
    )
    conn.execute("UPDATE charges SET amount_refunded = amount WHERE id = ?", (charge_id,))
    return refund_object(conn.execute("SELECT * FROM refunds WHERE id = ?", (row[0],)).fetchone())


def list_refunds(conn: sqlite3.Connection, params: RefundList) -> Object:
    filters = {"payment_intent": params.payment_intent, "charge": params.charge}
    rows, has_more = _page(
        conn, "refunds", {key: value for key, value in filters.items() if value}, params
    )
    return list_object("/v1/refunds", [refund_object(row) for row in rows], has_more)


def refund_object(row: sqlite3.Row) -> Object:
    return {
        "id": row["id"],
        "object": "refund",
        "amount": row["amount"],
        "charge": row["charge"],
        "created": row["created"],
        "currency": row["currency"],
        "metadata": {},
        "payment_intent": row["payment_intent"],
        "reason": row["reason"],
        "status": "succeeded",
    }


# -- Lists


def list_object(url: str, data: list[Object], has_more: bool) -> Object:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def _page(
    conn: sqlite3.Connection, table: str, filters: dict[str, str], params: ListParams
) -> tuple[list[sqlite3.Row], bool]:
    """A page of a table, newest first, after `starting_after` (table and column names come
    from this module, never from a request)."""
    where = [f"{column} = ?" for column in filters]
    args: list[object] = list(filters.values())
    if params.starting_after is not None:
        cursor = conn.execute(
            f"SELECT seq FROM {table} WHERE id = ?", (params.starting_after,)
        ).fetchone()
        if cursor is None:
            raise missing(table.rstrip("s"), params.starting_after, param="starting_after")
        where.append("seq < ?")
        args.append(cursor["seq"])
    sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
    rows = conn.execute(f"{sql} ORDER BY seq DESC LIMIT ?", [*args, params.limit + 1]).fetchall()
    return rows[: params.limit], len(rows) > params.limit
