"""A small Stripe-like payment provider: its HTTP service (a separate process with its own
SQLite database) and the client FlowForge uses. A leaf package: it imports nothing of FlowForge."""
