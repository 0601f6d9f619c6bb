"""prefect.yaml is the one declaration of the deployments; the runner serves exactly those."""

from __future__ import annotations

from datetime import timedelta

from deployments.serve import deployment_specs, runner_deployments


def test_runner_serves_the_deployments_of_prefect_yaml():
    served = {d.name: d for d in runner_deployments()}
    specs = {spec["name"]: spec for spec in deployment_specs()}
    assert (
        set(served)
        == set(specs)
        == {
            "order-intake",
            "fulfill-order",
            "reconcile",
            "cancel-order",
        }
    )
    for name, deployment in served.items():
        assert deployment.entrypoint == specs[name]["entrypoint"]
        assert specs[name]["work_pool"]["name"] == "flowforge"
    assert [s.schedule.interval for s in served["reconcile"].schedules] == [timedelta(seconds=60)]
    assert served["fulfill-order"].schedules == []
