"""A customer's ledger events, each parsed and read once.

The MRR facts, the cash tables and the activity stream all start from the same events;
reading each payload once here, and each object through `stripe_fields` once, is what a
derivation's time is mostly spent on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import orjson

from ledger.event_log import StoredEvent
from ledger.logs import get_logger
from projections.stripe_fields import StripeRecord, StripeShapeError, read_object

log = get_logger("projections")

# The kinds any derivation reads; other objects (prices, products...) are kept, not read.
_READ_KINDS: Final = frozenset(
    (
        "subscription",
        "discount",
        "invoice",
        "customer",
        "charge",
        "refund",
        "dispute",
        "balance_transaction",
        "invoice_payment",
    )
)


@dataclass(frozen=True, slots=True, order=True)
class Evidence:
    """The ledger event behind a fact."""

    created: datetime
    event_id: str
    position: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """One event's object, read; `record` is None for kinds no derivation reads, and
    `unreadable` is set when the object did not have a shape we can read."""

    type: str
    evidence: Evidence
    record: StripeRecord | None
    unreadable: bool = False


def read_events(events: Iterable[StoredEvent]) -> list[ReadEvent]:
    """Each distinct event once (the ledger dedupes; a rebuild input may not), read."""
    found: list[ReadEvent] = []
    seen: set[str] = set()
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        evidence = Evidence(event.created, event.event_id, event.position)
        try:
            obj = orjson.loads(event.payload)["data"]["object"]
            kind = obj.get("object")
            record = read_object(obj) if kind in _READ_KINDS else None
        except (StripeShapeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning(
                "event_unreadable", event_id=event.event_id, type=event.type, error=str(exc)
            )
            found.append(ReadEvent(event.type, evidence, None, unreadable=True))
            continue
        found.append(ReadEvent(event.type, evidence, record))
    return found
