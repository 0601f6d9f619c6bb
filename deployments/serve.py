"""`python -m deployments.serve`: serve every deployment of prefect.yaml from one process."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL

from flows.cli import bounded_seconds
from storage.arguments import OneLineParser, whole_number
from storage.settings import get_settings

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")


def deployment_specs() -> list[dict[str, Any]]:
    """The `deployments:` entries of prefect.yaml."""
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


def load_flow(entrypoint: str) -> Flow:
    """Import the flow named by an entrypoint such as `flows/fulfill.py:fulfill_order`."""
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def runner_deployments() -> list[RunnerDeployment]:
    """prefect.yaml's deployments, built from their flows for serving in this process."""
    return [
        load_flow(spec["entrypoint"]).to_deployment(
            name=spec["name"],
            description=spec.get("description"),
            tags=spec.get("tags"),
            parameters=spec.get("parameters"),
            interval=[schedule["interval"] for schedule in spec.get("schedules", [])] or None,
        )
        for spec in deployment_specs()
    ]


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = OneLineParser(prog="python -m deployments.serve", description=__doc__)
    parser.add_argument(
        "--limit",
        type=whole_number(256),
        default=settings.runner_limit,
        help="flow runs at once (FLOWFORGE_RUNNER_LIMIT)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=bounded_seconds(0.1, 60),
        default=settings.runner_poll_seconds,
        help="seconds between polls for submitted runs (FLOWFORGE_RUNNER_POLL_SECONDS)",
    )
    args = parser.parse_args(argv)
    if not PREFECT_API_URL.value():
        parser.exit(2, "PREFECT_API_URL is not set: point it at a Prefect server\n")
    serve(
        *runner_deployments(),
        limit=args.limit,
        query_seconds=args.poll_seconds,
        pause_on_shutdown=False,  # another runner or worker may still serve them
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
