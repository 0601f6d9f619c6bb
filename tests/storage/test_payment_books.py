"""What FlowForge knows of a charge request to Stripe: a request that may have reached Stripe is
never forgotten, whatever later attempts meet."""

from __future__ import annotations

import pytest

from storage import payment_books
from storage.db import session_scope
from storage.models import ChargeRequestStatus as S

KEY = "o1:payment"


def attempt(outcome: S | None) -> str:
    """One attempt: the request leaves, then `outcome` (None: its process died)."""
    with session_scope() as session:
        payment_books.begin_charge_request(
            session, order_id="o1", idempotency_key=KEY, amount=1000, charge_id="pi_1"
        )
    if outcome is not None:
        with session_scope() as session:
            payment_books.end_charge_request(session, idempotency_key=KEY, status=outcome)
    with session_scope() as session:
        return payment_books.charge_request(session, idempotency_key=KEY).status


@pytest.mark.usefixtures("db")
@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([S.UNREACHABLE], S.UNREACHABLE),
        ([S.UNREACHABLE, S.UNREACHABLE], S.UNREACHABLE),
        ([S.IN_DOUBT, S.UNREACHABLE], S.IN_DOUBT),  # the first may have charged
        ([None, S.UNREACHABLE], S.IN_DOUBT),  # so may one whose process died
        ([None], S.SENDING),
        ([S.UNREACHABLE, S.IN_DOUBT, S.CHARGED], S.CHARGED),
        ([S.DECLINED], S.DECLINED),
    ],
)
def test_a_request_that_may_have_charged_stays_in_doubt(outcomes, expected):
    for outcome in outcomes:
        status = attempt(outcome)
    assert status == expected
    with session_scope() as session:
        request = payment_books.charge_request(session, idempotency_key=KEY)
    assert request.attempts == len(outcomes)


@pytest.mark.usefixtures("db")
def test_only_attempts_that_may_have_reached_the_provider_say_when_they_left():
    attempt(S.UNREACHABLE)
    with session_scope() as session:
        request = payment_books.charge_request(session, idempotency_key=KEY)
    assert (request.reached_at, request.charge_id) == (None, "pi_1")

    attempt(S.IN_DOUBT)
    with session_scope() as session:
        doubtful = payment_books.charge_request(session, idempotency_key=KEY)
    assert doubtful.reached_at == doubtful.attempted_at

    attempt(S.UNREACHABLE)  # a later attempt that never connected moves nothing
    with session_scope() as session:
        request = payment_books.charge_request(session, idempotency_key=KEY)
    assert (request.status, request.reached_at) == (S.IN_DOUBT, doubtful.reached_at)
    assert request.attempted_at > doubtful.attempted_at
