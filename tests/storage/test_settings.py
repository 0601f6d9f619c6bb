"""The payment settings: Stripe needs a secret key, a live one only when allowed, and no error
ever repeats the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from storage.settings import Settings

LIVE = "sk_live_" + "9" * 24


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("FLOWFORGE_PAYMENT_PROVIDER", "STRIPE_API_KEY", "FLOWFORGE_STRIPE_ALLOW_LIVE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWFORGE_PAYMENT_PROVIDER": "stripe"}, "needs STRIPE_API_KEY"),
        ({"STRIPE_API_KEY": LIVE}, "is a live key"),
        ({"STRIPE_API_KEY": LIVE, "FLOWFORGE_STRIPE_ALLOW_LIVE": "false"}, "is a live key"),
        ({"STRIPE_API_KEY": "pk_test_" + "9" * 24}, "not a Stripe secret key"),
        ({"FLOWFORGE_PAYMENT_URL": "http://127.0.0.1:4300"}, "FLOWFORGE_PAYMENT_URL: retired"),
        ({"FLOWFORGE_PAYMENT_CURRENCY": "dollars"}, "String should match pattern"),
    ],
)
def test_refused_without_repeating_the_key(monkeypatch, env, message):
    with pytest.raises(ValidationError) as caught:
        settings(monkeypatch, **env)
    assert message in str(caught.value)
    assert "9" * 24 not in str(caught.value)


def test_a_live_key_when_allowed_and_a_key_never_shown(monkeypatch):
    allowed = settings(
        monkeypatch,
        FLOWFORGE_PAYMENT_PROVIDER="stripe",
        STRIPE_API_KEY=LIVE,
        FLOWFORGE_STRIPE_ALLOW_LIVE="true",
        FLOWFORGE_PAYMENT_CURRENCY="EUR",
    )
    assert allowed.stripe_api_key.get_secret_value() == LIVE
    assert allowed.payment_currency == "eur"
    assert LIVE not in repr(allowed) and LIVE not in str(allowed.model_dump())
