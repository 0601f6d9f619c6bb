"""Property-based fuzz of the OpenAPI schema: no generated request gets a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from api.app import app

schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, client):
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
