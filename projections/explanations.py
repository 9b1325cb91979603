"""One customer's story as a document: MRR history, movements and subscription states, each
with the Stripe event ids behind it (`explain --json` and `/api/v1/customers/{id}`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from projections.money import major_units
from projections.queries import IntervalRow, MovementRow, SubscriptionStateRow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def explanation_document(
    intervals: Sequence[IntervalRow],
    movements: Sequence[MovementRow],
    states: Sequence[SubscriptionStateRow],
) -> dict[str, Any]:
    currency = intervals[0].currency if intervals else "usd"
    return {
        "mrr_history": [
            {
                "valid_from": _iso(i.valid_from),
                "valid_to": _iso(i.valid_to),
                "mrr": major_units(i.mrr, i.currency),
                "currency": i.currency,
                "state": i.state,
                "event_ids": list(i.event_ids),
            }
            for i in intervals
        ],
        "movements": [
            {
                "effective_at": _iso(m.effective_at),
                "known_at": _iso(m.known_at),
                "kind": m.kind,
                "subtype": m.subtype,
                "amount": major_units(m.amount, m.currency),
                "mrr_before": major_units(m.mrr_before, m.currency),
                "mrr_after": major_units(m.mrr_after, m.currency),
                "currency": m.currency,
                "event_ids": list(m.event_ids),
            }
            for m in movements
        ],
        "subscriptions": [
            {
                "subscription_id": s.subscription_id,
                "valid_from": _iso(s.valid_from),
                "valid_to": _iso(s.valid_to),
                "status": s.status,
                "mrr": major_units(s.mrr, currency),
                "pending_cancellation": s.pending_cancellation,
                "pause_collection": s.pause_collection,
                "event_id": s.event_id,
            }
            for s in states
        ],
    }
