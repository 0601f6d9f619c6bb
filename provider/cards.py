"""Stripe's test payment methods (docs.stripe.com/testing): the `pm_card_…` PaymentMethods and
the `tok_…` tokens of the same cards, and what confirming a PaymentIntent with each does.
FlowForge's seed declines with any token starting `tok_declined` (`tok_declined_insufficient_funds`:
decline code `insufficient_funds`); the double keeps that."""

from __future__ import annotations

from dataclasses import dataclass

LEGACY_DECLINED_PREFIX = "tok_declined"


@dataclass(frozen=True)
class Card:
    """A test card: its brand and last four digits, and the decline it meets (None: it pays)."""

    brand: str
    last4: str
    code: str | None = None  # the error code of a decline
    decline_code: str | None = None

    @property
    def message(self) -> str:
        return {
            "expired_card": "Your card has expired.",
            "insufficient_funds": "Your card has insufficient funds.",
        }.get(self.decline_code or self.code or "", "Your card was declined.")


CARDS = {
    "visa": Card("visa", "4242"),
    "visa_debit": Card("visa", "5556"),
    "mastercard": Card("mastercard", "4444"),
    "amex": Card("amex", "8431"),
    "discover": Card("discover", "1117"),
    "chargeDeclined": Card("visa", "0002", "card_declined", "generic_decline"),
    "chargeDeclinedInsufficientFunds": Card("visa", "9995", "card_declined", "insufficient_funds"),
    "chargeDeclinedFraudulent": Card("visa", "0019", "card_declined", "fraudulent"),
    "chargeDeclinedExpiredCard": Card("visa", "0069", "expired_card", None),
}


def test_card(payment_method: str, prefix: str) -> Card | None:
    """The card behind a test id (`pm_card_visa` with prefix `pm_card_`, `tok_visa` with
    `tok_`), None when it names none."""
    if prefix == "tok_" and payment_method.startswith(LEGACY_DECLINED_PREFIX):
        reason = payment_method.removeprefix(LEGACY_DECLINED_PREFIX).strip("_")
        return Card("visa", "0002", "card_declined", reason or "generic_decline")
    if not payment_method.startswith(prefix):
        return None
    return CARDS.get(payment_method.removeprefix(prefix))
