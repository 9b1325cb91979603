"""Alerts: thresholds and period-over-period changes on the figures of `metrics`, firing once
per crossing and delivered to a real HTTP receiver on 127.0.0.1, on both engines."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from cli.alerts_command import alerts_app
from ledger.engine import write_transaction
from ledger.event_log import EventLog
from ledger.schema import alert_firings, alerts
from projections import metrics
from projections.account_config import load_config
from projections.alerts import (
    COUNT_KEYS,
    MONEY_KEYS,
    RATE_KEYS,
    STATUS_KEYS,
    Firing,
    add_alert,
    evaluate_alerts,
)
from projections.fx import load_rates
from projections.runner import ProjectionRunner
from projections.worker import projection_worker
from simulator.stripe_account import BASIL
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.feeding import ACCOUNT, ledger_events
from tests.support.scenarios import ALL_SCENARIOS, at
from tests.support.signing import encode, signed

SECRET_PATH = "/services/T0001/B0002/s3cr3tT0ken"


@dataclass
class Receiver:
    """What a webhook receiver was sent; `status` and `delay` shape its answers."""

    base: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            record = found[0]
            body = self.rfile.read(int(self.headers["content-length"]))
            record.paths.append(self.path)
            record.bodies.append(json.loads(body))
            time.sleep(record.delay)
            self.send_response(record.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (a timeout test) is not an error here

    server = Server(("127.0.0.1", 0), Handler)
    found.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield found[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def feed(engine: AsyncEngine, event_log: EventLog, name: str) -> None:
    await event_log.append(ledger_events(ALL_SCENARIOS[name](BASIL)))
    await ProjectionRunner(engine).catch_up(ACCOUNT)


async def new_alert(
    engine: AsyncEngine,
    metric: str,
    condition: str,
    value: str,
    *,
    period: str = "month",
    webhook_url: str | None = None,
) -> int:
    async with write_transaction(engine) as conn:
        return await add_alert(
            conn, ACCOUNT, metric, condition, Decimal(value), period, webhook_url, at(2025, 1, 1)
        )


async def firing_state(engine: AsyncEngine, alert_id: int) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(select(alerts.c.firing).where(alerts.c.id == alert_id)))


async def firing_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(alert_firings).order_by(alert_firings.c.id))).all())


async def test_a_threshold_alert_fires_once_per_crossing(
    engine: AsyncEngine, event_log: EventLog, receiver: Receiver
) -> None:
    # S5: a 40.00 contraction on 07-05, a 60.00 churn on 07-20; each week ending at `now`.
    await feed(engine, event_log, "S5")
    alert_id = await new_alert(
        engine, "churned_revenue", "above", "0", period="week", webhook_url=receiver.base
    )
    states, fired = [], []
    for day in (3, 7, 10, 15, 22, 25):
        firings = await evaluate_alerts(engine, ACCOUNT, at(2025, 7, day))
        fired += [f.observed for f in firings]
        states.append(await firing_state(engine, alert_id))
    assert states == [False, True, True, False, True, True]
    assert fired == ["40.00", "60.00"]
    assert [body["observed"] for body in receiver.bodies] == ["40.00", "60.00"]
    first = receiver.bodies[0]
    assert first | {"text": None} == {
        "text": None,
        "account": ACCOUNT,
        "alert_id": alert_id,
        "metric": "churned_revenue",
        "condition": "above",
        "value": "0",
        "observed": "40.00",
        "period": "week",
        "period_start": "2025-06-30T00:00:00+00:00",
        "period_end": "2025-07-07T00:00:00+00:00",
        "fired_at": "2025-07-07T00:00:00+00:00",
        "currency": "usd",
    }
    assert "churned_revenue is 40.00 USD, above 0 USD" in first["text"]
    rows = await firing_rows(engine)
    assert [(r.alert_id, r.observed, r.delivered, r.delivery_error) for r in rows] == [
        (alert_id, "40.00", True, None),
        (alert_id, "60.00", True, None),
    ]
    assert [r.fired_at for r in rows] == [at(2025, 7, 7), at(2025, 7, 22)]


async def test_a_change_alert_compares_with_the_period_before(
    engine: AsyncEngine, event_log: EventLog, receiver: Receiver
) -> None:
    # S5: MRR 200.00 at the end of June, 100.00 at the end of July: down 50%.
    await feed(engine, event_log, "S5")
    down = await new_alert(engine, "mrr_end", "down", "20", webhook_url=receiver.base)
    up = await new_alert(engine, "mrr_end", "up", "20", webhook_url=receiver.base)
    either = await new_alert(engine, "mrr_end", "either", "60", webhook_url=receiver.base)
    firings = await evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1))
    assert [(f.alert_id, f.observed) for f in firings] == [(down, "-50.00")]
    assert [await firing_state(engine, a) for a in (down, up, either)] == [True, False, False]
    (body,) = receiver.bodies
    assert (body["observed"], body["current"], body["previous"]) == ("-50.00", "100.00", "200.00")
    assert (body["period_start"], body["period_end"]) == (
        "2025-07-01T00:00:00+00:00",
        "2025-08-01T00:00:00+00:00",
    )
    assert "mrr_end down 50.00% (200.00 USD → 100.00 USD)" in body["text"]


async def test_a_change_from_a_zero_base_is_undefined(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    # S9: MRR 0.00 at the end of March, 100.00 at the end of April: no percentage of zero.
    await feed(engine, event_log, "S9")
    alert_id = await new_alert(engine, "mrr_end", "up", "10")
    assert await evaluate_alerts(engine, ACCOUNT, at(2025, 5, 1)) == []
    assert not await firing_state(engine, alert_id)
    assert await firing_rows(engine) == []


async def test_an_undefined_figure_neither_fires_nor_clears(
    engine: AsyncEngine, event_log: EventLog, receiver: Receiver
) -> None:
    # S9: NRR is 0.0000 over March; over April no one paid at its start, so NRR is null.
    await feed(engine, event_log, "S9")
    firing = await new_alert(engine, "nrr", "below", "0.9", webhook_url=receiver.base)
    assert len(await evaluate_alerts(engine, ACCOUNT, at(2025, 4, 1))) == 1
    fresh = await new_alert(engine, "nrr", "below", "0.9", webhook_url=receiver.base)
    assert await evaluate_alerts(engine, ACCOUNT, at(2025, 5, 1)) == []
    assert await firing_state(engine, firing) is True
    assert await firing_state(engine, fresh) is False
    assert len(receiver.bodies) == 1
    assert len(await firing_rows(engine)) == 1


async def test_a_failed_delivery_is_recorded_and_never_raised(
    engine: AsyncEngine, event_log: EventLog, receiver: Receiver
) -> None:
    await feed(engine, event_log, "S5")
    receiver.status = 500
    refused = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"
    rejected_id = await new_alert(engine, "mrr_end", "above", "50", webhook_url=receiver.base)
    refused_id = await new_alert(engine, "mrr_end", "above", "50", webhook_url=refused)
    firings = await evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1))
    assert {f.alert_id for f in firings} == {rejected_id, refused_id}
    rows = {r.alert_id: r for r in await firing_rows(engine)}
    assert (rows[rejected_id].delivered, rows[rejected_id].delivery_error) == (False, "HTTP 500")
    assert rows[refused_id].delivered is False
    assert rows[refused_id].delivery_error.startswith("ConnectError")
    assert "s3cr3t" not in rows[refused_id].delivery_error
    # It fired: a failed delivery is not retried as a new firing.
    assert await firing_state(engine, rejected_id) is True
    assert await evaluate_alerts(engine, ACCOUNT, at(2025, 8, 2)) == []


async def test_a_slow_receiver_times_out_without_holding_up_evaluation(
    engine: AsyncEngine, event_log: EventLog, receiver: Receiver
) -> None:
    await feed(engine, event_log, "S5")
    receiver.delay = 1.0
    await new_alert(engine, "mrr_end", "above", "50", webhook_url=receiver.base)
    started = time.monotonic()
    (firing,) = await evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1), delivery_timeout=0.2)
    assert time.monotonic() - started < 0.9
    assert (firing.delivered, firing.delivery_error) == (False, "ReadTimeout")


async def test_the_webhook_path_never_reaches_the_logs(
    engine: AsyncEngine, event_log: EventLog, receiver: Receiver
) -> None:
    await feed(engine, event_log, "S5")
    delivered = f"{receiver.base}{SECRET_PATH}?token=hush"
    refused = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}?token=hush"
    await new_alert(engine, "mrr_end", "above", "50", webhook_url=delivered)
    await new_alert(engine, "mrr_end", "above", "50", webhook_url=refused)
    with structlog.testing.capture_logs() as logs:
        await evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1))
    assert receiver.paths == [f"{SECRET_PATH}?token=hush"]
    events = [entry["event"] for entry in logs]
    assert events.count("alert_fired") == 2 and "alert_delivery_failed" in events
    assert {e["webhook_host"] for e in logs if e["event"] == "alert_fired"} == {
        receiver.base.removeprefix("http://"),
        refused.removeprefix("http://").split("/")[0],
    }
    assert "s3cr3t" not in repr(logs) and "hush" not in repr(logs)


async def test_alerts_without_a_webhook_are_logged(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await feed(engine, event_log, "S5")
    await new_alert(engine, "active_customers", "below", "2")
    with structlog.testing.capture_logs() as logs:
        (firing,) = await evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1))
    assert (firing.observed, firing.delivered, firing.delivery_error) == ("1", False, None)
    (fired,) = [entry for entry in logs if entry["event"] == "alert_fired"]
    assert fired["webhook_host"] is None and fired["observed"] == "1"


async def test_two_evaluations_at_once_fire_once(
    engine: AsyncEngine, event_log: EventLog, receiver: Receiver
) -> None:
    await feed(engine, event_log, "S5")
    await new_alert(engine, "mrr_end", "above", "50", webhook_url=receiver.base)
    both = await asyncio.gather(
        evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1)),
        evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1)),
    )
    assert sum(len(firings) for firings in both) == 1
    assert len(receiver.bodies) == 1 and len(await firing_rows(engine)) == 1


async def test_evaluation_inside_the_callers_transaction(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await feed(engine, event_log, "S5")
    alert_id = await new_alert(engine, "mrr_end", "below", "150")
    async with write_transaction(engine) as conn:
        firings: list[Firing] = await evaluate_alerts(conn, ACCOUNT, at(2025, 8, 1))
    assert [f.alert_id for f in firings] == [alert_id]
    assert await firing_state(engine, alert_id) is True
    assert [r.message for r in await firing_rows(engine)] == [firings[0].message]


async def test_every_scalar_figure_of_the_metrics_document_is_an_alert_metric(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        config = await load_config(conn, ACCOUNT, "usd")
        rates = await load_rates(conn, "usd")
        document = await metrics.period(
            conn, ACCOUNT, at(2025, 1, 1), at(2025, 2, 1), config, rates
        )
    scalar = {k for k, v in document.items() if not isinstance(v, dict)}
    assert scalar - {"period_start", "period_end", "currency"} == {
        *MONEY_KEYS,
        *COUNT_KEYS,
        *RATE_KEYS,
    }
    assert all(isinstance(document[k], int) for k in COUNT_KEYS)
    assert all(isinstance(document[k], str | None) for k in (*MONEY_KEYS, *RATE_KEYS))
    nested = {f"subscriptions_by_status.{s}" for s in document["subscriptions_by_status"]}
    assert nested == set(STATUS_KEYS)


async def test_the_worker_evaluates_alerts_after_new_events(
    database: TestDatabase, engine: AsyncEngine, receiver: Receiver
) -> None:
    alert_id = await new_alert(engine, "mrr_end", "above", "50", webhook_url=receiver.base)
    scenario = ALL_SCENARIOS["S5"](BASIL)
    async with app_client(make_settings(database), companions=[projection_worker]) as client:
        for event in scenario.events:
            body = encode(event)
            response = await client.post("/webhooks/stripe", content=body, headers=signed(body))
            assert response.status_code == 200
        for _ in range(200):
            if receiver.bodies:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # any second delivery would arrive by now
    # Wherever the worker stood among the events, MRR was above 50.00 once it first moved.
    assert [body["alert_id"] for body in receiver.bodies] == [alert_id]
    assert await firing_state(engine, alert_id) is True


# --- The command line -----------------------------------------------------------------------


async def alerts_cli(database: TestDatabase, *args: str) -> tuple[int, str, str]:
    """`stripe-ledger alerts ...`, run in-process like tests/support/cli_runner.py."""
    result = await asyncio.to_thread(
        CliRunner().invoke, alerts_app, list(args), env=database.environment() | {"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout, result.stderr


async def test_alerts_add_list_remove(database: TestDatabase, engine: AsyncEngine) -> None:
    webhook = f"https://hooks.slack.com{SECRET_PATH}"
    code, out, err = await alerts_cli(
        database, "add", "--metric", "mrr_end", "--below", "10000.50", "--webhook-url", webhook
    )
    assert code == 0, err
    assert "mrr_end below 10000.50 (month)" in out and "s3cr3t" not in out
    code, _, err = await alerts_cli(
        database, "add", "--metric", "customer_churn_rate", "--up", "10%", "--period", "week"
    )
    assert code == 0, err
    code, out, err = await alerts_cli(database, "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [
        (a["metric"], a["condition"], a["value"], a["period"], a["webhook"]) for a in listed
    ] == [
        ("mrr_end", "below", "10000.50", "month", "https://hooks.slack.com/…"),
        ("customer_churn_rate", "up", "10", "week", None),
    ]
    assert [(a["firing"], a["last_fired"]) for a in listed] == [(False, None), (False, None)]
    code, out, err = await alerts_cli(database, "list")
    assert code == 0, err
    assert "mrr_end" in out and "hooks.slack.com" in out and "s3cr3t" not in out
    code, out, err = await alerts_cli(database, "remove", str(listed[0]["id"]))
    assert code == 0, err
    code, out, _ = await alerts_cli(database, "list", "--json")
    assert [a["metric"] for a in json.loads(out)] == ["customer_churn_rate"]
    code, _, err = await alerts_cli(database, "remove", str(listed[0]["id"]))
    assert code == 1 and f"no alert {listed[0]['id']}" in err


async def test_alerts_list_shows_firing_and_last_fired(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    await feed(engine, event_log, "S5")
    await new_alert(engine, "mrr_end", "below", "150")
    await evaluate_alerts(engine, ACCOUNT, at(2025, 8, 1))
    code, out, err = await alerts_cli(database, "list", "--json", "--account", ACCOUNT)
    assert code == 0, err
    (listed,) = json.loads(out)
    assert (listed["firing"], listed["last_fired"]) == (True, "2025-08-01T00:00:00+00:00")
    code, out, _ = await alerts_cli(database, "list", "--account", "elsewhere", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--metric", "mrr", "--below", "1"],
            "unknown metric 'mrr' (did you mean mrr_end?); known: mrr_start, mrr_end",
        ),
        (["--metric", "customer_churn_rate", "--above", "5"], "0.05 is 5%"),
        (["--metric", "mrr_end"], "give exactly one of"),
        (["--metric", "mrr_end", "--above", "1", "--down", "5"], "give exactly one of"),
        (["--metric", "mrr_end", "--below", "10k"], "'10k' is not a decimal number"),
        (["--metric", "mrr_end", "--below", "NaN"], "not a finite number"),
        (["--metric", "mrr_end", "--change", "0"], "greater than 0"),
        (["--metric", "mrr_end", "--below", "1", "--period", "quarter"], "month, week, day"),
        (
            ["--metric", "mrr_end", "--below", "1", "--webhook-url", "ftp://h.example/s3cr3t"],
            "http:// or https:// URL",
        ),
    ],
)
async def test_alerts_add_refuses_what_it_cannot_evaluate(
    database: TestDatabase, engine: AsyncEngine, args: list[str], message: str
) -> None:
    code, out, err = await alerts_cli(database, "add", *args)
    assert code == 2
    assert message in " ".join(err.split()), err
    assert "s3cr3t" not in err + out
    async with engine.connect() as conn:
        assert (await conn.execute(select(alerts))).all() == []
