"""Debug logs carry no customer's personal data: at LEDGER_LOG_LEVEL=debug, storing and
deriving an event with a customer's email and name logs the SQL, never those values; nor
does a replay (as `serve --reconcile` runs) log the bodies Stripe answers with."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.logs import configure_logging
from projections.runner import ProjectionRunner
from replay.client import StripeApi
from replay.run import Replay
from simulator.stripe_account import BASIL, Item, StripeAccount
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.fake_stripe import Dataset, serve_fake_stripe
from tests.support.signing import encode, envelope, signed
from tests.support.stripe_fixtures import resource

EMAIL = "ada.lovelace.7731@example.org"
NAME = "Ada Quillfeather-Lovelace"
TOKEN = "dash_" + "L0gg1ngPr1v4cyT0k3n"


def customer_created() -> bytes:
    customer = resource("customer") | {"id": "cus_privacy", "email": EMAIL, "name": NAME}
    return encode(envelope(customer, "customer.created"))


async def test_debug_logs_of_storing_and_deriving_an_event_hold_no_email_or_name(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    captured = io.StringIO()
    configure_logging("debug", stream=captured)
    settings = make_settings(database, LEDGER_LOG_LEVEL="debug", LEDGER_DASHBOARD_TOKEN=TOKEN)
    async with app_client(settings) as client:
        body = customer_created()
        stored = await client.post("/webhooks/stripe", content=body, headers=signed(body))
        assert stored.status_code == 200, stored.text
        await ProjectionRunner(engine).catch_up("default")
        read = await client.get(
            "/api/v1/customers/cus_privacy", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert read.status_code in (200, 404), read.text
    logged = captured.getvalue()
    # Debug logging was on and reached the SQL layer: the statement that stores the
    # customer's email and name is there...
    assert "webhook_stored" in logged and "INSERT INTO customers" in logged
    # ...but not what they carried.
    assert EMAIL not in logged and "ada.lovelace" not in logged
    assert NAME not in logged and "Quillfeather" not in logged


async def test_debug_logs_of_a_replay_hold_no_email_or_name_from_stripes_answers(
    engine: AsyncEngine,
) -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    account = StripeAccount(BASIL, namespace="P")
    account.price("price_A", amount="10.00")
    customer = account.customer("cus_privacy", at=start, name=NAME, email=EMAIL)
    account.subscribe("sub_privacy", customer, [Item("price_A")], at=start)
    captured = io.StringIO()
    configure_logging("debug", stream=captured)
    with serve_fake_stripe(Dataset.from_account(account)) as fake:
        api = StripeApi(fake.api_key, base_url=fake.base_url, requests_per_second=100)
        replay = Replay(
            engine, api, account="default", since=start, until=datetime.now(UTC), livemode=False
        )
        report = await replay.run()
    assert report.appended > 0
    logged = captured.getvalue()
    assert "Stripe API response" in logged  # Stripe's own log lines were captured
    assert EMAIL not in logged and NAME not in logged and "Quillfeather" not in logged
