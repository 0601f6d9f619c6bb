"""A local double of Stripe's API, the subset FlowForge calls through the official SDK: a
separate process with its own SQLite database and test fault switches. A leaf package: it
imports nothing of FlowForge."""
