"""A customer whose events cannot be derived is quarantined: its rows stay as they were, a
projection error names it, every other customer goes on, and the quarantine clears once the
customer derives again. Failures are made by breaking a reader (as a bug would), then fixing
it (as a release would)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy import text as sql_text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog
from ledger.schema import CUSTOMER_READ_MODELS, customer_mrr, ledger_events, monthly_metrics
from projections import customer_derivation
from projections.customer_history import derive_customer_history
from projections.quarantine import Quarantined, quarantined
from projections.runner import ProjectionRunner
from projections.stripe_fields import dispatch
from projections.worker import projection_worker
from simulator.life import end_of, simulated_account
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.cli_runner import invoke, invoke_json
from tests.support.databases import TestDatabase
from tests.support.fake_stripe import Dataset, serve_fake_stripe
from tests.support.signing import encode, signed
from tests.support.stripe_fixtures import event_2020

ACCOUNT = "default"
TOKEN = "dash_" + "K8j7H6g5F4d3S2a1L0p9"
NOW = datetime(2021, 8, 1, tzinfo=UTC)


def subscription_event(
    customer: str, *, unit_amount: int = 1000, quantity: int = 1, created: int = 1621572344
) -> dict[str, Any]:
    """A `customer.subscription.updated` of this customer's own subscription."""
    event = event_2020("subscription_updated")
    event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    event["created"] = created
    obj = event["data"]["object"]
    obj["id"] = f"sub_{customer.removeprefix('cus_')}"
    obj["customer"] = customer
    item = obj["items"]["data"][0]
    item["quantity"] = quantity
    item["price"]["unit_amount"] = unit_amount
    item["price"]["unit_amount_decimal"] = str(unit_amount)
    item["plan"]["amount"] = unit_amount
    item["plan"]["amount_decimal"] = str(unit_amount)
    return event


async def append(engine: AsyncEngine, *events: dict[str, Any]) -> None:
    parsed = [parse_event(encode(e), account=ACCOUNT, source=Source.WEBHOOK) for e in events]
    await EventLog(engine).append(parsed)


async def head(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.max(ledger_events.c.position))) or 0)


async def rows_of(engine: AsyncEngine, customer: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row of one customer, without surrogate ids."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in CUSTOMER_READ_MODELS:
            columns = [c for c in table.c if c.name != "id"]
            result = await conn.execute(select(*columns).where(table.c.customer_id == customer))
            found[table.name] = sorted(tuple(map(str, row)) for row in result)
    return found


async def mrr_rows(engine: AsyncEngine, customer: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(customer_mrr)
            .where(customer_mrr.c.customer_id == customer)
        )
    return int(count or 0)


async def errors(engine: AsyncEngine) -> list[Quarantined]:
    async with engine.connect() as conn:
        return await quarantined(conn, ACCOUNT)


def break_subscriptions_of(monkeypatch: pytest.MonkeyPatch, customer: str) -> None:
    """The subscription reader fails on this customer's subscriptions, as a bug would."""
    reader: Callable[[Any], Any] = dispatch._READERS["subscription"]

    def broken(obj: Any) -> Any:
        if obj.get("customer") == customer:
            raise RuntimeError(f"a bug, with payload data {obj['id']}")
        return reader(obj)

    monkeypatch.setitem(dispatch._READERS, "subscription", broken)


async def test_a_customer_that_cannot_be_derived_is_quarantined_and_the_others_go_on(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = subscription_event("cus_bad")
    await append(engine, bad, subscription_event("cus_good"))
    break_subscriptions_of(monkeypatch, "cus_bad")
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    assert await runner.position(ACCOUNT) == await head(engine)
    assert await mrr_rows(engine, "cus_good") > 0
    [error] = await errors(engine)
    assert (error.customer_id, error.event_ids) == ("cus_bad", (bad["id"],))


async def test_a_failure_no_single_event_causes_names_every_event_of_the_customer(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = subscription_event("cus_bad"), subscription_event("cus_bad", created=1621572400)
    await append(engine, first, second)

    def broken(facts: Any, settings: Any) -> Any:
        if facts.customer_id == "cus_bad":
            raise RuntimeError("fails with or without events")
        return derive_customer_history(facts, settings)

    monkeypatch.setattr("projections.customer_derivation.derive_customer_history", broken)
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    [error] = await errors(engine)
    assert error.event_ids == (first["id"], second["id"])


async def test_a_projection_error_is_one_line_without_payload_data(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(engine, subscription_event("cus_bad"))
    break_subscriptions_of(monkeypatch, "cus_bad")
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    [error] = await errors(engine)
    assert error.error.startswith("RuntimeError at projections/stripe_fields/dispatch.py:")
    assert error.error.endswith(" (read_object)")
    assert "\n" not in error.error
    assert "sub_bad" not in error.error and "payload" not in error.error


async def test_a_quarantined_customer_keeps_the_rows_it_had(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(engine, subscription_event("cus_bad", created=1621572344))
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    before = await rows_of(engine, "cus_bad")
    break_subscriptions_of(monkeypatch, "cus_bad")
    await append(engine, subscription_event("cus_bad", unit_amount=5000, created=1621572400))
    await runner.catch_up(ACCOUNT)
    assert [e.customer_id for e in await errors(engine)] == ["cus_bad"]
    assert await rows_of(engine, "cus_bad") == before
    assert before["customer_mrr"]


async def test_the_quarantine_clears_on_the_customers_next_event_once_it_derives(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(engine, subscription_event("cus_bad"))
    break_subscriptions_of(monkeypatch, "cus_bad")
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    assert await errors(engine)
    monkeypatch.undo()  # the fix
    await append(engine, subscription_event("cus_bad", created=1621572400))
    await runner.catch_up(ACCOUNT)
    assert await errors(engine) == []
    assert await mrr_rows(engine, "cus_bad") > 0


async def test_a_rebuild_completes_beside_a_quarantined_customer_and_clears_it_once_fixed(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(engine, subscription_event("cus_bad"), subscription_event("cus_good"))
    break_subscriptions_of(monkeypatch, "cus_bad")
    runner = ProjectionRunner(engine)
    assert await runner.rebuild(ACCOUNT) == 2
    assert await runner.position(ACCOUNT) == await head(engine)
    assert await mrr_rows(engine, "cus_good") > 0
    assert [e.customer_id for e in await errors(engine)] == ["cus_bad"]
    monkeypatch.undo()
    await runner.rebuild(ACCOUNT)
    assert await errors(engine) == []
    assert await mrr_rows(engine, "cus_bad") > 0


async def monthly(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    columns = [c for c in monthly_metrics.c if c.name != "computed_at"]
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(select(*columns).order_by("month"))]


async def test_a_rebuild_keeps_the_rows_and_figures_of_a_customer_it_quarantines(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(engine, subscription_event("cus_bad"), subscription_event("cus_good"))
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT, now=NOW)
    rows, figures = await rows_of(engine, "cus_bad"), await monthly(engine)
    break_subscriptions_of(monkeypatch, "cus_bad")
    await runner.rebuild(ACCOUNT, now=NOW)
    assert [e.customer_id for e in await errors(engine)] == ["cus_bad"]
    assert await rows_of(engine, "cus_bad") == rows
    assert await monthly(engine) == figures


async def test_rows_too_large_for_their_columns_quarantine_the_customer_on_both_engines(
    engine: AsyncEngine,
) -> None:
    # Each value within the readers' bounds; their product is not a 64-bit integer.
    huge = subscription_event("cus_huge", unit_amount=10**12 - 1, quantity=10**9 - 1)
    await append(engine, huge, subscription_event("cus_good"))
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    [error] = await errors(engine)
    assert (error.customer_id, error.event_ids) == ("cus_huge", (huge["id"],))
    assert error.error.startswith("RowRejected: ") and "beyond a 64-bit integer" in error.error
    assert await mrr_rows(engine, "cus_good") > 0
    assert await runner.position(ACCOUNT) == await head(engine)


async def test_a_write_the_database_refuses_quarantines_only_that_customer(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the row checks the INSERT itself fails (PostgreSQL then aborts the whole
    # transaction unless it ran inside a savepoint).
    monkeypatch.setattr(customer_derivation, "check_rows", lambda table, rows: None)
    huge = subscription_event("cus_huge", unit_amount=10**12 - 1, quantity=10**9 - 1)
    await append(engine, subscription_event("cus_a"), huge, subscription_event("cus_z"))
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    assert [e.customer_id for e in await errors(engine)] == ["cus_huge"]
    assert await mrr_rows(engine, "cus_a") > 0 and await mrr_rows(engine, "cus_z") > 0
    assert await runner.position(ACCOUNT) == await head(engine)


# --- seen by the operator: stats, check, /readyz, the dashboard; the worker goes on --------


async def quarantine_one(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> str:
    """cus_bad quarantined (cus_good derived); the id of the event that failed."""
    bad = subscription_event("cus_bad")
    await append(engine, bad, subscription_event("cus_good"))
    with monkeypatch.context() as patch:
        break_subscriptions_of(patch, "cus_bad")
        await ProjectionRunner(engine).catch_up(ACCOUNT)
    return str(bad["id"])


async def test_ledger_stats_lists_each_quarantined_customer_with_its_events_and_error(
    database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await quarantine_one(engine, monkeypatch)
    document = await invoke_json(database, "ledger", "stats")
    [error] = document["projection_errors"]
    assert (error["account"], error["customer_id"], error["event_ids"]) == (
        ACCOUNT,
        "cus_bad",
        [event_id],
    )
    assert error["error"].startswith("RuntimeError at projections/")
    code, out, _ = await invoke(database, "ledger", "stats")
    assert code == 0
    assert "1 customers quarantined" in out and "cus_bad" in out


async def test_ledger_stats_lists_no_projection_errors_when_every_customer_derives(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    await append(engine, subscription_event("cus_good"))
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    assert (await invoke_json(database, "ledger", "stats"))["projection_errors"] == []


async def test_check_reports_quarantined_customers_as_a_problem(
    database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await quarantine_one(engine, monkeypatch)
    account = simulated_account(customers=2, months=1, seed=9)
    with serve_fake_stripe(Dataset.from_account(account, now=end_of(1))) as fake:
        code, out, err = await invoke(
            database,
            "check",
            "--json",
            extra_env={"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.base_url},
        )
    report = json.loads(out)
    assert code == 1, err
    assert any("1 customers of account 'default' are quarantined" in p for p in report["problems"])


async def test_readyz_stays_ready_and_warns_of_quarantined_customers(
    database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await quarantine_one(engine, monkeypatch)
    async with app_client(make_settings(database)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    document = response.json()
    assert document["status"] == "ready"
    [warning] = document["warnings"]
    assert (warning["kind"], warning["account"], warning["customers"]) == (
        "customers_quarantined",
        ACCOUNT,
        1,
    )


async def test_the_dashboard_says_how_many_customers_are_left_out(
    database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await quarantine_one(engine, monkeypatch)
    settings = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)
    async with app_client(settings) as client:
        page = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert 'id="quarantine"' in page.text
    assert "1 customers of account default cannot be derived" in page.text


async def test_the_worker_moves_past_a_customer_that_cannot_be_derived(
    database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_subscriptions_of(monkeypatch, "cus_bad")
    async with app_client(make_settings(database), companions=[projection_worker]) as client:
        for event in (subscription_event("cus_bad"), subscription_event("cus_good")):
            body = encode(event)
            response = await client.post("/webhooks/stripe", content=body, headers=signed(body))
            assert response.status_code == 200
        runner = ProjectionRunner(engine)
        for _ in range(200):  # a bounded wait for the worker, woken by each commit
            if await runner.position(ACCOUNT) == await head(engine):
                break
            await asyncio.sleep(0.05)
    assert await runner.position(ACCOUNT) == await head(engine)
    assert await mrr_rows(engine, "cus_good") > 0
    assert [e.customer_id for e in await errors(engine)] == ["cus_bad"]


DOCS = Path(__file__).parent.parent / "docs"


def documented_sql(marker: str) -> str:
    """The SQL statement docs/read-models.md shows after the comment `marker`."""
    text = (DOCS / "read-models.md").read_text()
    block = text[text.index(marker) :]
    return block[: block.index("```")].strip()


async def test_the_documented_query_lists_quarantined_customers(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await quarantine_one(engine, monkeypatch)
    query = documented_sql("-- Who is quarantined")
    async with engine.connect() as conn:
        rows = (await conn.execute(sql_text(query))).all()
    assert [(r.customer_id, json.loads(r.event_ids)) for r in rows] == [("cus_bad", [event_id])]


async def test_the_documented_rebuild_clears_the_quarantine_once_the_code_is_fixed(
    database: TestDatabase, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "$ stripe-ledger rebuild --account default\n" in (DOCS / "operations.md").read_text()
    await quarantine_one(engine, monkeypatch)  # the reader is fixed when it returns
    code, out, err = await invoke(database, "rebuild", "--account", "default")
    assert code == 0, err or out
    assert await errors(engine) == []
    assert await mrr_rows(engine, "cus_bad") > 0


async def test_a_database_outage_while_writing_is_retried_later_never_quarantined(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(engine, subscription_event("cus_a"))

    async def unreachable(*args: Any) -> None:
        raise OperationalError("INSERT INTO customer_mrr", {}, ConnectionRefusedError())

    monkeypatch.setattr("projections.runner._replace", unreachable)
    runner = ProjectionRunner(engine)
    with pytest.raises(OperationalError):
        await runner.catch_up(ACCOUNT)
    monkeypatch.undo()
    assert await errors(engine) == []
    assert await runner.position(ACCOUNT) == 0


def invoice_event(customer: str, invoice_id: str) -> dict[str, Any]:
    event = event_2020("invoice_paid")
    event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    event["data"]["object"] |= {"id": invoice_id, "customer": customer}
    return event


async def test_rows_the_database_refuses_quarantine_one_customer_and_the_chunk_goes_on(
    engine: AsyncEngine,
) -> None:
    # Two customers claiming one invoice: the second's invoices row breaks the primary key,
    # an error PostgreSQL raises in the server, aborting the transaction but for a savepoint.
    await append(
        engine,
        invoice_event("cus_a", "in_shared"),
        invoice_event("cus_b", "in_shared"),
        subscription_event("cus_c"),
    )
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    [error] = await errors(engine)
    assert error.customer_id == "cus_b" and error.error.startswith("IntegrityError at projections/")
    assert await mrr_rows(engine, "cus_c") > 0
    assert await runner.position(ACCOUNT) == await head(engine)
