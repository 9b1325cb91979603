"""Turning a customer's derived history into rows of the read-model tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Table

from ledger.schema import customer_mrr, customers, mrr_movements, subscription_states
from projections.customer_facts import CustomerFacts
from projections.customer_history import CustomerHistory
from projections.money import round_minor, to_text
from projections.read_events import Evidence
from projections.routing import GUEST


def _ids(causes: Iterable[Evidence]) -> tuple[str, str]:
    ordered = sorted(causes)
    return (
        orjson.dumps([c.event_id for c in ordered]).decode(),
        orjson.dumps([c.position for c in ordered]).decode(),
    )


def rows_for(facts: CustomerFacts, history: CustomerHistory) -> dict[Table, list[dict[str, Any]]]:
    account, customer_id = facts.account, facts.customer_id
    rows: dict[Table, list[dict[str, Any]]] = {}
    profile = facts.customer
    first_seen = min(
        [s.evidence.created for snaps in facts.subscriptions.values() for s in snaps]
        + [f.evidence.created for f in facts.discounts]
        + [f.evidence.created for fs in facts.invoices.values() for f in fs]
        + ([facts.first_seen] if facts.first_seen else []),
        default=None,
    )
    if first_seen is not None and customer_id != GUEST:
        rows[customers] = [
            {
                "account": account,
                "customer_id": customer_id,
                "email": profile.email if profile else None,
                "name": profile.name if profile else None,
                "currency": history.currency or (profile.currency if profile else None),
                "created": profile.created if profile else None,
                "deleted_at": facts.deleted_at,
                "first_seen": first_seen,
            }
        ]
    rows[subscription_states] = [
        {
            "account": account,
            "customer_id": customer_id,
            "subscription_id": s.state.subscription_id,
            "valid_from": s.valid_from,
            "valid_to": s.valid_to,
            "status": s.state.status,
            "currency": s.state.currency,
            "mrr": round_minor(s.state.mrr),
            "mrr_exact": to_text(s.state.mrr),
            "potential_mrr_exact": to_text(s.state.potential_mrr),
            "trialing": s.state.trialing,
            "pause_collection": s.state.pause_collection,
            "paused": s.state.paused,
            "pending_cancellation": s.state.pending_cancellation,
            "discount_ids": orjson.dumps(list(s.state.discount_keys)).decode(),
            "event_id": s.state.evidence.event_id,
            "position": s.state.evidence.position,
        }
        for s in history.subscriptions
    ]
    rows[customer_mrr] = []
    for interval in history.intervals:
        event_ids, positions = _ids(interval.causes)
        rows[customer_mrr].append(
            {
                "account": account,
                "customer_id": customer_id,
                "valid_from": interval.valid_from,
                "valid_to": interval.valid_to,
                "mrr": round_minor(interval.mrr),
                "mrr_exact": to_text(interval.mrr),
                "currency": interval.currency,
                "state": interval.state,
                "event_ids": event_ids,
                "positions": positions,
            }
        )
    rows[mrr_movements] = []
    for movement in history.movements:
        event_ids, positions = _ids(movement.causes)
        rows[mrr_movements].append(
            {
                "account": account,
                "customer_id": customer_id,
                "effective_at": movement.at,
                "known_at": movement.known_at,
                "kind": movement.kind,
                "subtype": movement.subtype,
                "amount": round_minor(movement.amount),
                "amount_exact": to_text(movement.amount),
                "mrr_before_exact": to_text(movement.mrr_before),
                "mrr_after_exact": to_text(movement.mrr_after),
                "currency": movement.currency,
                "event_ids": event_ids,
                "positions": positions,
            }
        )
    return rows
