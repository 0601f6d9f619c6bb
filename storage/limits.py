"""The input rules every face of FlowForge shares: the commands (storage/arguments.py) and the
HTTP API (api/) accept the same ids, names and amounts."""

from __future__ import annotations

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
PRODUCT_NAME = r"^[ -~]{1,128}$"
MAX_RECEIPT = 1_000_000
MAX_UNIT_PRICE = 1_000_000  # cents: 10,000.00 a unit
