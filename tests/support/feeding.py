"""Feeding scenario events to the ledger the way Stripe delivers them: late, twice and out
of order. Also a dump of the read models for comparing two builds."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import StoredEvent
from ledger.schema import CUSTOMER_READ_MODELS
from projections.metric_settings import PROFILES, MetricSettings
from tests.support.scenarios import Expected, Scenario
from tests.support.signing import encode

ACCOUNT = "default"


def ledger_events(scenario: Scenario) -> list[NewEvent]:
    """The scenario's webhook deliveries and backfilled snapshots, ready to append."""
    return [
        *(parse_event(encode(e), account=ACCOUNT, source=Source.WEBHOOK) for e in scenario.events),
        *(
            parse_event(encode(e), account=ACCOUNT, source=Source.BACKFILL)
            for e in scenario.backfill
        ),
    ]


RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def as_stored(events: Sequence[NewEvent]) -> list[StoredEvent]:
    """The events as the ledger would hand them back, positions in this arrival order:
    for tests of the pure derivations, without a database."""
    return [
        StoredEvent(
            position=position,
            account=e.account,
            event_id=e.event_id,
            type=e.type,
            object_type=e.object_type,
            object_id=e.object_id,
            customer_id=e.customer_id,
            livemode=e.livemode,
            api_version=e.api_version,
            created=e.created,
            received_at=RECEIVED,
            source=e.source,
            payload=e.payload,
        )
        for position, e in enumerate(events, start=1)
    ]


def shuffled_with_duplicates(
    events: Sequence[NewEvent], rng: random.Random, duplicates: float = 0.2
) -> list[NewEvent]:
    delivered = list(events) + [e for e in events if rng.random() < duplicates]
    rng.shuffle(delivered)
    return delivered


def chunks(events: Sequence[NewEvent], rng: random.Random) -> list[list[NewEvent]]:
    """Split into uneven batches, as concurrent deliveries would be committed."""
    out: list[list[NewEvent]] = []
    i = 0
    while i < len(events):
        size = rng.randint(1, 12)
        out.append(list(events[i : i + size]))
        i += size
    return out


def settings_for(expected: Expected) -> MetricSettings:
    overrides: dict[str, Any] = dict(expected.settings)
    profile = PROFILES[overrides.pop("profile", "default")]
    return profile.with_overrides(**overrides)


# Surrogate keys and ledger positions depend on arrival order; everything else must not.
_ORDER_DEPENDENT = {"id", "positions", "position", "first_seen"}


async def dump_read_models(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    dumped: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in CUSTOMER_READ_MODELS:
            columns = [c for c in table.c if c.name not in _ORDER_DEPENDENT]
            rows = await conn.execute(select(*columns))
            dumped[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return dumped
