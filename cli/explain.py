"""Rendering one customer's story for `stripe-ledger explain` (tables or JSON)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from projections.explanations import explanation_document
from projections.queries import IntervalRow, MovementRow, SubscriptionStateRow


def explanation_tables(
    intervals: Sequence[IntervalRow],
    movements: Sequence[MovementRow],
    states: Sequence[SubscriptionStateRow],
) -> list[tuple[str, Table]]:
    document = explanation_document(intervals, movements, states)
    history = Table("from", "to", "MRR", "state", "events")
    for row in document["mrr_history"]:
        history.add_row(
            row["valid_from"],
            row["valid_to"] or "",
            f"{row['mrr']} {row['currency']}",
            row["state"],
            ", ".join(row["event_ids"]),
        )
    moves = Table("effective", "movement", "amount", "MRR after", "events")
    for row in document["movements"]:
        kind = row["kind"] + (f" ({row['subtype']})" if row["subtype"] else "")
        moves.add_row(
            row["effective_at"],
            kind,
            row["amount"],
            row["mrr_after"],
            ", ".join(row["event_ids"]),
        )
    subs = Table("subscription", "from", "to", "status", "MRR", "event")
    for row in document["subscriptions"]:
        subs.add_row(
            row["subscription_id"],
            row["valid_from"],
            row["valid_to"] or "",
            row["status"] + (" (cancels at period end)" if row["pending_cancellation"] else ""),
            row["mrr"],
            row["event_id"],
        )
    return [("MRR history", history), ("Movements", moves), ("Subscriptions", subs)]
