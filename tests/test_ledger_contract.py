"""The event log's contract, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import EventLog, Outcome
from tests.support.signing import encode, fresh_id
from tests.support.stripe_fixtures import event_2020


def new_event(name: str = "invoice_paid", account: str = "default", **changes: object) -> NewEvent:
    document = fresh_id(event_2020(name))
    document.update(changes)
    return parse_event(encode(document), account=account, source=Source.WEBHOOK)


async def test_append_stores_the_payload_exactly_as_received(event_log: EventLog) -> None:
    event = new_event()
    [result] = await event_log.append([event])
    [stored] = await event_log.read_after(0)
    assert result.outcome is Outcome.STORED
    assert stored.position == result.position
    assert stored.payload == event.payload
    assert (stored.event_id, stored.type, stored.object_type) == (
        event.event_id,
        "invoice.paid",
        "invoice",
    )
    assert stored.customer_id == "cus_JsuO3bmrj0QlAw"
    assert stored.api_version == "2020-03-02"
    assert stored.created.utcoffset() is not None and stored.received_at.utcoffset() is not None


async def test_positions_increase_in_append_order(event_log: EventLog) -> None:
    results = await event_log.append([new_event() for _ in range(5)])
    positions = [r.position for r in results]
    assert positions == sorted(positions) and len(set(positions)) == 5


async def test_a_redelivered_event_is_stored_once(event_log: EventLog) -> None:
    event = new_event()
    [first] = await event_log.append([event])
    [again] = await event_log.append([event])
    assert again.outcome is Outcome.DUPLICATE and again.position == first.position
    assert len(await event_log.read_after(0)) == 1


async def test_a_redelivery_differing_only_in_pending_webhooks_is_a_duplicate(
    event_log: EventLog,
) -> None:
    document = fresh_id(event_2020("invoice_paid"))
    first = parse_event(encode(document), account="default", source=Source.WEBHOOK)
    document["pending_webhooks"] = 7
    retry = parse_event(encode(document), account="default", source=Source.WEBHOOK)
    await event_log.append([first])
    [result] = await event_log.append([retry])
    assert result.outcome is Outcome.DUPLICATE


async def test_duplicates_inside_one_batch_are_stored_once(event_log: EventLog) -> None:
    event = new_event()
    results = await event_log.append([event, event, event])
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len({r.position for r in results}) == 1


async def test_same_id_with_other_content_is_kept_aside_and_original_untouched(
    event_log: EventLog,
) -> None:
    # The fixture files charge_succeeded and charge_refunded share one event id.
    original = parse_event(
        encode(event_2020("charge_succeeded")), account="a", source=Source.WEBHOOK
    )
    other = parse_event(encode(event_2020("charge_refunded")), account="a", source=Source.WEBHOOK)
    assert original.event_id == other.event_id
    [stored] = await event_log.append([original])
    [conflict] = await event_log.append([other])
    await event_log.append([other])  # the same conflicting payload again is kept once
    assert conflict.outcome is Outcome.CONFLICT and conflict.position == stored.position
    [row] = await event_log.read_after(0)
    assert row.payload == original.payload
    stats = await event_log.stats()
    assert stats.conflicts == 1 and stats.conflicts_by_account == {"a": 1}


async def test_the_same_event_id_in_two_accounts_is_two_events(event_log: EventLog) -> None:
    event = new_event()
    other_account = parse_event(event.payload, account="staging", source=Source.WEBHOOK)
    results = await event_log.append([event, other_account])
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.STORED]


async def test_read_after_returns_later_positions_in_order(event_log: EventLog) -> None:
    results = await event_log.append([new_event() for _ in range(4)])
    later = await event_log.read_after(results[1].position)
    assert [e.position for e in later] == [r.position for r in results[2:]]
    assert [e.position for e in await event_log.read_after(0, limit=2)] == [
        r.position for r in results[:2]
    ]


async def test_events_of_one_customer_and_one_object(event_log: EventLog) -> None:
    paid, voided, sub = (
        new_event("invoice_paid"),
        new_event("invoice_voided"),
        new_event("subscription_created"),
    )
    await event_log.append([paid, voided, sub])
    of_customer = await event_log.events_of_customer("default", "cus_JsuO3bmrj0QlAw")
    assert [e.event_id for e in of_customer] == [paid.event_id, voided.event_id]
    of_object = await event_log.events_of_object("default", "in_1KJqKBJDPojXS6LNJbvLUgEy")
    assert len(of_object) == 2


async def test_stats_count_per_account_type_and_source(event_log: EventLog) -> None:
    await event_log.append([new_event(), new_event(), new_event("charge_succeeded")])
    stats = await event_log.stats()
    counts = {(r.account, r.type, r.source): r.events for r in stats.by_account_type_source}
    assert counts == {
        ("default", "invoice.paid", "webhook"): 2,
        ("default", "charge.succeeded", "webhook"): 1,
    }
    assert stats.events == 3 and stats.first_position is not None
    assert stats.last_received_at is not None and stats.last_received_at.utcoffset() is not None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_events SET type = 'rewritten'",
        "DELETE FROM ledger_events",
        "DELETE FROM ledger_events WHERE position = (SELECT max(position) FROM ledger_events)",
    ],
)
async def test_the_database_refuses_to_rewrite_the_ledger(
    engine: AsyncEngine, event_log: EventLog, statement: str
) -> None:
    await event_log.append([new_event()])
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    assert len(await event_log.read_after(0)) == 1


async def test_the_database_refuses_to_rewrite_kept_conflicts(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append(
        [
            parse_event(encode(event_2020(n)), account="a", source=Source.WEBHOOK)
            for n in ("charge_succeeded", "charge_failed")
        ]
    )
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM ledger_conflicts"))


async def test_truncating_the_ledger_is_refused(engine: AsyncEngine, event_log: EventLog) -> None:
    # SQLite has no TRUNCATE: its equivalent is a DELETE without WHERE (the truncate
    # optimisation), which the row trigger turns off and refuses.
    statement = (
        "TRUNCATE ledger_events CASCADE"
        if engine.dialect.name == "postgresql"
        else "DELETE FROM ledger_events"
    )
    await event_log.append([new_event()])
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    assert len(await event_log.read_after(0)) == 1


async def test_fifty_concurrent_deliveries_of_one_event_store_one_row(event_log: EventLog) -> None:
    event = new_event()
    results = await asyncio.gather(*(event_log.append([event]) for _ in range(50)))
    outcomes = [r.outcome for [r] in results]
    assert outcomes.count(Outcome.STORED) == 1
    assert outcomes.count(Outcome.DUPLICATE) == 49
    assert len(await event_log.read_after(0)) == 1


async def test_a_tailing_reader_never_skips_a_row_that_commits_late(event_log: EventLog) -> None:
    """Appenders race on separate connections while a reader tails by position. A reader
    that saw position n and later found a smaller position committed would have lost it."""
    writers, per_writer = 8, 15
    seen: list[int] = []
    done = asyncio.Event()

    async def write(n: int) -> None:
        for _ in range(per_writer):
            await event_log.append([new_event(), new_event()])

    async def tail() -> None:
        last = 0
        while True:
            finished = done.is_set()
            batch = await event_log.read_after(last)
            if batch:
                seen.extend(e.position for e in batch)
                last = batch[-1].position
            elif finished:
                return

    reader = asyncio.create_task(tail())
    await asyncio.gather(*(write(n) for n in range(writers)))
    done.set()
    await reader
    everything = [e.position for e in await event_log.read_after(0, limit=10_000)]
    assert len(everything) == writers * per_writer * 2
    assert seen == everything
