"""FlowForge as a service: the Prefect deployments, the runner that serves them, the stack."""
