"""Payments at the HTTP payment provider, as FlowForge sees them: this process's one client of
the provider, the reconciliation of its charges with FlowForge's books, and the whole audit
(storage's invariants and that reconciliation). The books themselves, tables and SQL, are in
storage/payment_books.py."""
