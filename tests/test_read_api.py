"""The read API and the dashboard: the same figures as `metrics --json`, each movement with
its Stripe event ids, only for the holder of the token, and never a 5xx for a bad request."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashboard.openapi import OPENAPI
from ledger.engine import write_transaction
from ledger.schema import ledger_events
from ledger.secrets import new_secret_key
from projections.fx import store_rates
from projections.runner import ProjectionRunner
from simulator.fx_rates import daily_rates
from simulator.life import START, AccountLife, end_of
from simulator.outputs import append_to_ledger
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase

TOKEN = "dash_" + "Q7w8E9r0T1y2U3i4O5p6"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MONTHS = 5
PERIOD = "2024-03"


@pytest.fixture
async def filled(engine: AsyncEngine) -> AsyncEngine:
    await append_to_ledger(AccountLife(25, MONTHS, seed=4), engine, "default")
    async with write_transaction(engine) as conn:
        await store_rates(conn, "usd", daily_rates(START.date(), end_of(MONTHS).date(), 4))
    await ProjectionRunner(engine).catch_up("default")
    return engine


@pytest.fixture
async def client(database: TestDatabase, filled: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)
    async with app_client(settings) as client:
        yield client


def check(document: Any, schema_name: str) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": OPENAPI["components"]}
    jsonschema.Draft202012Validator(schema).validate(document)


READ_PATHS = (
    "/",
    f"/api/v1/metrics?period={PERIOD}",
    f"/api/v1/movements?period={PERIOD}",
    "/api/v1/customers/cus_anyone",
    "/api/v1/openapi.json",
    "/dashboard.csv?table=mrr",
)


@pytest.mark.parametrize("path", READ_PATHS)
async def test_without_credentials_every_read_path_answers_401_and_shows_nothing(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert "mrr" not in response.text.lower().replace("stripe-ledger", "")


@pytest.mark.parametrize("path", READ_PATHS)
async def test_a_wrong_token_is_refused(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert response.status_code == 401


async def test_without_a_configured_token_nobody_gets_in(
    database: TestDatabase, filled: AsyncEngine
) -> None:
    async with app_client(make_settings(database)) as client:
        response = await client.get(f"/api/v1/metrics?period={PERIOD}", headers=AUTH)
    assert response.status_code == 401


async def test_metrics_is_the_document_the_cli_prints(
    client: httpx.AsyncClient, database: TestDatabase
) -> None:
    response = await client.get(f"/api/v1/metrics?period={PERIOD}", headers=AUTH)
    assert response.status_code == 200
    code, printed, err = await invoke(database, "metrics", "--period", PERIOD, "--json")
    assert code == 0, err
    assert response.json() == json.loads(printed)
    check(response.json(), "PeriodFigures")


async def test_metrics_by_month_and_as_of_match_the_description(
    client: httpx.AsyncClient,
) -> None:
    by_month = await client.get(
        "/api/v1/metrics?from=2024-01-01&to=2024-04-01&by_month=true", headers=AUTH
    )
    assert [d["period_start"][:7] for d in by_month.json()] == ["2024-01", "2024-02", "2024-03"]
    for document in by_month.json():
        check(document, "PeriodFigures")
    snapshot = await client.get("/api/v1/metrics?as_of=2024-04-01", headers=AUTH)
    check(snapshot.json(), "SnapshotFigures")
    assert snapshot.json()["mrr"] == by_month.json()[-1]["mrr_end"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/metrics?period=2024-13",
        "/api/v1/metrics?period=whenever",
        "/api/v1/metrics?from=2024-01-01",
        "/api/v1/metrics?from=2024-03-01&to=2024-01-01",
        "/api/v1/metrics?as_of=yesterday-ish",
        "/api/v1/metrics?period=2024-03&by_month=perhaps",
        "/api/v1/metrics?period=2024-03&account=" + "a" * 65,
        "/api/v1/movements",
        "/api/v1/movements?period=2024-03&kind=upsell",
        "/dashboard.csv?table=nothing",
        "/?from=2024-13",
        "/?from=2024-05&to=2024-01",
    ],
)
async def test_a_bad_parameter_answers_400_with_a_reason(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.text.strip()


async def test_movements_carry_their_stripe_event_ids_and_filter_by_kind_and_customer(
    client: httpx.AsyncClient, filled: AsyncEngine
) -> None:
    everything = (await client.get(f"/api/v1/movements?period={PERIOD}", headers=AUTH)).json()
    check(everything, "Movements")
    moves = everything["movements"]
    assert moves and {m["kind"] for m in moves} >= {"new"}
    async with filled.connect() as conn:
        known = set((await conn.scalars(select(ledger_events.c.event_id))).all())
    assert all(m["event_ids"] and set(m["event_ids"]) <= known for m in moves)
    news = (await client.get(f"/api/v1/movements?period={PERIOD}&kind=new", headers=AUTH)).json()[
        "movements"
    ]
    assert news == [m for m in moves if m["kind"] == "new"]
    one = moves[0]["customer_id"]
    theirs = (
        await client.get(f"/api/v1/movements?period={PERIOD}&customer={one}", headers=AUTH)
    ).json()["movements"]
    assert theirs == [m for m in moves if m["customer_id"] == one]


async def test_a_customer_has_an_mrr_history_and_movements(client: httpx.AsyncClient) -> None:
    moves = (await client.get(f"/api/v1/movements?period={PERIOD}", headers=AUTH)).json()
    customer = moves["movements"][0]["customer_id"]
    story = await client.get(f"/api/v1/customers/{customer}", headers=AUTH)
    assert story.status_code == 200
    check(story.json(), "Customer")
    assert story.json()["mrr_history"] and story.json()["movements"]


async def test_an_unknown_customer_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/customers/cus_nobody", headers=AUTH)
    assert response.status_code == 404


async def test_the_openapi_description_names_every_endpoint(client: httpx.AsyncClient) -> None:
    described = (await client.get("/api/v1/openapi.json", headers=AUTH)).json()
    assert described["openapi"].startswith("3.1")
    assert set(described["paths"]) == {
        "/api/v1/metrics",
        "/api/v1/movements",
        "/api/v1/customers/{customer_id}",
    }
    jsonschema.Draft202012Validator.check_schema(described["components"]["schemas"]["Movement"])


# --- the dashboard -------------------------------------------------------------------------


async def test_the_login_form_sets_a_cookie_that_opens_the_dashboard(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.post("/login", data={"token": "guess"})
    assert refused.status_code == 401
    signed_in = await client.post("/login", data={"token": TOKEN})
    assert signed_in.status_code == 303
    assert TOKEN not in signed_in.headers["set-cookie"]
    page = await client.get("/?from=2024-01&to=2024-04")
    assert page.status_code == 200 and "<svg" in page.text


def cells(page: str, table: str) -> dict[str, dict[str, str]]:
    """month -> data-key -> shown text, from one of the page's tables."""
    body = page.split(f'data-table="{table}"', 1)[1].split("</table>", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for row in re.findall(r"<tr><td>(\d{4}-\d{2})</td>(.*?)</tr>", body):
        rows[row[0]] = dict(re.findall(r'data-key="(\w+)">([^<]*)<', row[1]))
    return rows


async def test_the_dashboard_shows_the_figures_metrics_gives(client: httpx.AsyncClient) -> None:
    page = (await client.get("/?from=2024-01&to=2024-04", headers=AUTH)).text
    documents = (
        await client.get("/api/v1/metrics?from=2024-01-01&to=2024-05-01&by_month=1", headers=AUTH)
    ).json()
    mrr, customers = cells(page, "mrr"), cells(page, "customers")
    assert list(mrr) == ["2024-01", "2024-02", "2024-03", "2024-04"]
    for document in documents:
        month = document["period_start"][:7]
        shown = mrr[month]["mrr_end"].replace("$", "").replace(",", "")
        assert shown == document["mrr_end"]
        assert customers[month]["active_customers"] == str(document["active_customers"])


async def test_clicking_a_months_bar_lists_its_movements_with_event_ids(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/?from=2024-01&to=2024-04", headers=AUTH)).text
    link = re.search(r'<a href="(/\?[^"]*month=2024-03[^"]*)"', page)
    assert link is not None
    listed = (await client.get(link.group(1).replace("&amp;", "&"), headers=AUTH)).text
    moves = (await client.get("/api/v1/movements?period=2024-03", headers=AUTH)).json()
    section = listed.split('id="month-movements"', 1)[1]
    for move in moves["movements"]:
        assert move["customer_id"] in section and move["event_ids"][0] in section


async def test_every_table_downloads_as_csv(client: httpx.AsyncClient) -> None:
    for table in ("mrr", "movements", "customers", "retention", "revenue"):
        response = await client.get(
            f"/dashboard.csv?table={table}&from=2024-01&to=2024-04", headers=AUTH
        )
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/csv"
        )
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0][0] == "month" and len(rows) == 5
    moves = await client.get("/dashboard.csv?table=month_movements&month=2024-03", headers=AUTH)
    assert moves.status_code == 200 and "evt_" in moves.text


async def test_test_mode_accounts_wear_a_badge(database: TestDatabase, filled: AsyncEngine) -> None:
    settings = make_settings(
        database,
        LEDGER_DASHBOARD_TOKEN=TOKEN,
        STRIPE_API_KEY="sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc",
    )
    async with app_client(settings) as client:
        page = (await client.get("/?from=2024-02&to=2024-03", headers=AUTH)).text
    assert 'id="test-mode"' in page


async def test_live_accounts_wear_no_badge(client: httpx.AsyncClient) -> None:
    page = (await client.get("/?from=2024-02&to=2024-03", headers=AUTH)).text
    assert 'id="test-mode"' not in page


async def test_the_as_reported_switch_shows_the_figures_as_reported(
    client: httpx.AsyncClient,
) -> None:
    restated = (await client.get("/?from=2024-03&to=2024-03", headers=AUTH)).text
    switch = re.search(r'id="reported-switch" href="([^"]+)"', restated)
    assert switch is not None and "as_reported=1" in switch.group(1)
    page = (await client.get(switch.group(1).replace("&amp;", "&"), headers=AUTH)).text
    reported = (
        await client.get("/api/v1/metrics?period=2024-03&as_reported=true", headers=AUTH)
    ).json()
    shown = cells(page, "mrr")["2024-03"]["mrr_end"].replace("$", "").replace(",", "")
    assert shown == reported["mrr_end"]
    assert "as reported" in page


async def test_the_account_selector_lists_every_account(
    database: TestDatabase, filled: AsyncEngine
) -> None:
    secret_key = new_secret_key()
    code, _, err = await invoke(
        database,
        "accounts",
        "add",
        "second",
        "--webhook-secret",
        "whsec_" + "S3c0nd4cc0untS3cr3tV4lu3",
        "--mode",
        "test",
        extra_env={"LEDGER_SECRET_KEY": secret_key},
    )
    assert code == 0, err
    settings = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN, LEDGER_SECRET_KEY=secret_key)
    async with app_client(settings) as client:
        page = (await client.get("/?from=2024-03&to=2024-03", headers=AUTH)).text
    options = re.findall(r"<option[^>]*>([^<]+)</option>", page)
    assert {"default", "second"} <= set(options)
