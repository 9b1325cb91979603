"""The real-shaped Stripe objects the simulator starts from, shipped with the package.

`resource(...)` gives one object of a resource in the current API shape (from Stripe's
OpenAPI fixtures, MIT); `object_2020(...)` gives the `data.object` of a pre-2025 webhook
event (API 2020-03-02, from an open-source sync engine's test suite, Apache-2.0). Both
licences are in this folder; `scripts/simulator-templates` regenerates templates.json.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def _templates() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        resources.files(__package__).joinpath("templates.json").read_text()
    )
    return loaded


def resource(name: str) -> dict[str, Any]:
    """A fresh copy of one current-layout object, e.g. `resource("invoice")`."""
    return copy.deepcopy(_templates()["resources"][name])


def object_2020(name: str) -> dict[str, Any]:
    """A fresh copy of the object of one 2020-03-02 event, e.g. `object_2020("invoice_paid")`."""
    return copy.deepcopy(_templates()["objects_2020"][name])
