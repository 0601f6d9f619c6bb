"""Stripe's request encoding: form bodies and query strings with bracket keys
(`metadata[order_id]=o-1`, `expand[0]=latest_charge`), decoded into nested dicts and lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A key that is not `name` or `name[part]...`."""


def decode(text: str) -> dict[str, Any]:
    """`a[b]=1&c[0]=x&c[1]=y` → `{"a": {"b": "1"}, "c": ["x", "y"]}`."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head, *_PART.findall("[" + rest)] if rest else [head]
        if not head or (rest and "".join(f"[{p}]" for p in parts[1:]) != "[" + rest):
            raise FormError(f"Invalid parameter name: {key}")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part or str(len(node)), {})
            if not isinstance(node, dict):
                raise FormError(f"Invalid parameter name: {key}")
        last = parts[-1] or str(len(node))
        node[last] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    """Dicts whose keys are 0, 1, 2, ... become lists."""
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        indexes = sorted(items, key=int)
        if [int(i) for i in indexes] == list(range(len(indexes))):
            return [items[i] for i in indexes]
    return items
