"""Real-shaped Stripe objects from ../shared/stripe-fixtures, loaded as plain dicts.

Two layouts: `event_2020(...)` gives pre-2025 webhook envelopes (API 2020-03-02),
`resource(...)` gives one object of each resource in the current API shape.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "stripe-fixtures"


@cache
def _events_2020(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "events-2020" / f"{name}.json").read_text())
    return loaded


@cache
def _resources() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "fixtures3.json").read_text())["resources"]
    return loaded


def event_2020(name: str) -> dict[str, Any]:
    """A fresh copy of one envelope, e.g. `event_2020("invoice_paid")`."""
    return copy.deepcopy(_events_2020(name))


def resource(name: str) -> dict[str, Any]:
    """A fresh copy of one current-layout object, e.g. `resource("invoice")`."""
    return copy.deepcopy(_resources()[name])
