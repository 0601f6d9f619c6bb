"""`/openapi.json` documents what every route answers: each 2xx response is a named model
with its fields (or a list of them); `/metrics` is Prometheus text."""

from __future__ import annotations

from typing import Any

TEXT_ROUTES = {"/metrics"}


def _model(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The component a response schema names: itself, or the items of an array."""
    if schema.get("type") == "array":
        schema = schema["items"]
    ref = schema.get("$ref", "")
    assert ref.startswith("#/components/schemas/"), schema
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_every_success_response_has_a_documented_schema(client):
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if not code.startswith("2"):
                    continue
                checked += 1
                content = response.get("content", {})
                where = f"{method.upper()} {path} {code}"
                if path in TEXT_ROUTES:
                    assert list(content) == ["text/plain"], where
                    continue
                assert list(content) == ["application/json"], where
                model = _model(spec, content["application/json"]["schema"])
                assert model.get("properties"), where
    assert checked == sum(len(operations) for operations in spec["paths"].values())


def test_the_order_status_documents_the_summary_and_the_runs(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/orders/{workflow_id}/status"]["get"]
    model = _model(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"order_id", "status", "saga", "events", "flow_run", "task_run"} <= set(
        model["properties"]
    )


def test_the_order_status_documents_its_bounded_long_poll(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/orders/{workflow_id}/status"]["get"]
    [wait] = [p for p in operation["parameters"] if p["name"] == "wait"]
    assert (wait["in"], wait["required"]) == ("query", False)
    assert {"type": "number", "exclusiveMinimum": 0, "maximum": 60} in wait["schema"]["anyOf"]
