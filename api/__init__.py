"""FlowForge's HTTP API: the seed's endpoints, plus cancel, retry and the audit."""
