"""The event log's contract, identical on SQLite and PostgreSQL, and for each way of
appending (AppendPath): SQLAlchemy Core on both engines, PostgreSQL's unnest statement."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine
from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import AppendPath, EventLog, Outcome
from ledger.migrate import upgrade
from tests.support.databases import PostgresRun, TestDatabase, sqlite_database
from tests.support.signing import encode, fresh_id
from tests.support.stripe_fixtures import event_2020


@pytest.fixture(params=list(AppendPath))
def event_log(request: pytest.FixtureRequest, engine: AsyncEngine) -> EventLog:
    """Every contract test below runs once per append path the engine has (conftest does
    not collect UNNEST on SQLite)."""
    assert request.param is AppendPath.CORE or engine.dialect.name == "postgresql"
    return EventLog(engine, path=request.param)


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


def _random_batches(seed: int) -> list[list[NewEvent]]:
    """Batches drawn from a small pool of deliveries, so that ids repeat within a batch and
    across batches, with the same content (duplicates), with pending_webhooks changed
    (still duplicates) and with other content (conflicts), in two accounts and both sources."""
    rng = random.Random(seed)
    names = ("invoice_paid", "charge_succeeded", "subscription_created", "customer_updated")
    pool: list[NewEvent] = []
    for n in range(12):
        document = event_2020(rng.choice(names))
        document["id"] = f"evt_contract{seed:03d}x{n:03d}"
        for variant in range(3):
            changed = dict(document)
            if variant == 1:
                changed["pending_webhooks"] = rng.randrange(1, 9)
            if variant == 2:
                changed["created"] = document["created"] + 1  # other content: a conflict
            for account in ("default", "staging"):
                source = rng.choice(list(Source))
                pool.append(parse_event(encode(changed), account=account, source=source))
    return [
        [rng.choice(pool) for _ in range(rng.randrange(1, 25))] for _ in range(rng.randrange(5, 15))
    ]


async def _append_all(
    database: TestDatabase, path: AppendPath, batches: list[list[NewEvent]]
) -> tuple[list[Any], list[Any], list[Any]]:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        log = EventLog(engine, path=path)
        results = [[(r.outcome, r.position) for r in await log.append(b)] for b in batches]
        async with engine.connect() as conn:
            events = (
                await conn.execute(
                    text(
                        "SELECT position, account, event_id, type, object_type, object_id, "
                        "customer_id, livemode, api_version, created, source, content_hash, "
                        "payload FROM ledger_events ORDER BY position"
                    )
                )
            ).all()
            conflicts = (
                await conn.execute(
                    text(
                        "SELECT id, account, event_id, original_position, source, "
                        "content_hash, payload FROM ledger_conflicts ORDER BY id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    # SQLite hands timestamps back as text; compare them as the event log reads them.
    return (
        results,
        [(*row[:9], str(row[9])[:19], *row[10:]) for row in events],
        [tuple(row) for row in conflicts],
    )


def _ranked(appended: tuple[list[Any], list[Any], list[Any]]) -> tuple[Any, ...]:
    """Positions and conflict ids replaced by their rank: PostgreSQL's sequences also spend
    a number on a row ON CONFLICT skips, so they have gaps where SQLite's have none."""
    results, events, conflicts = appended
    rank = {row[0]: n for n, row in enumerate(events, 1)}
    return (
        [[(outcome, rank[p]) for outcome, p in batch] for batch in results],
        [(rank[row[0]], *row[1:]) for row in events],
        [(n, *row[1:3], rank[row[3]], *row[4:]) for n, row in enumerate(conflicts, 1)],
    )


@pytest.mark.parametrize("seed", range(4))
async def test_every_append_path_stores_the_same_rows_and_answers_the_same(
    seed: int, tmp_path: Any, postgres_run: PostgresRun | None
) -> None:
    """The same random batches through SQLAlchemy Core on SQLite and on PostgreSQL and
    through PostgreSQL's unnest statement give the same results, rows and kept conflicts."""
    if postgres_run is None:
        pytest.skip("LEDGER_TEST_ENGINES leaves PostgreSQL out")
    batches = _random_batches(seed)
    reference = await _append_all(sqlite_database(tmp_path), AppendPath.CORE, batches)
    core = await _append_all(await postgres_run.new_schema(), AppendPath.CORE, batches)
    unnest = await _append_all(await postgres_run.new_schema(), AppendPath.UNNEST, batches)
    assert unnest == core
    assert _ranked(core) == _ranked(reference)
    outcomes = {outcome for batch in reference[0] for outcome, _ in batch}
    assert outcomes == set(Outcome)  # the batches exercised every outcome
